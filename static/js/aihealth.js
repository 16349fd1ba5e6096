/* The AI-health card (SPEC §16): this node's last 15 minutes, loaded once
 * and then pushed over the dashboard socket; alerts when a threshold is
 * crossed; and the thresholds form in Settings (admins). */
import { $, api, el, toast } from "./core.js";

var FIGURES = [["replies", "Replies"], ["latency_p50_ms", "p50", " ms"], ["latency_p95_ms", "p95", " ms"], ["timeouts", "Timeouts"],
  ["fallbacks", "Fallbacks"], ["errors", "Errors"], ["loops", "Loops"], ["stuck_typing", "Stuck typing"]];

/** Shows a health report in the card. */
export function showHealth(health) {
  $("ai-health-figures").replaceChildren.apply($("ai-health-figures"), FIGURES.map(function (f) {
    var value = health[f[0]];
    return el("div", { "data-figure": f[0] }, el("dt", { class: "d-inline fw-normal text-body-secondary", text: f[1] + " " }),
      el("dd", { class: "d-inline m-0 fw-semibold", text: value === null || value === undefined ? "—" : value + (f[2] || "") }));
  }));
}
export async function loadHealth() {
  try { showHealth(await api("GET", "/api/ai-health?minutes=15")); } catch (e) { /* the next push fills it */ }
}
/** A threshold was crossed. */
export function onAiAlert(alert) {
  var text = "AI alert: " + alert.metric.replace(/_/g, " ") + " " + alert.value + " (over " + alert.max + " in " + alert.minutes + " min)";
  $("ai-health-alert").textContent = text;
  $("ai-health-alert").hidden = false;
  toast(text, "danger");
}

// Settings: one limit per figure, one window for all.
export async function loadAlertSettings() {
  var current = await api("GET", "/api/ai-health/alerts");
  var byMetric = {};
  current.alerts.forEach(function (a) { byMetric[a.metric] = a; $("ai-alerts-minutes").value = a.minutes; });
  $("ai-alerts-fields").replaceChildren.apply($("ai-alerts-fields"), FIGURES.map(function (f) {
    var id = "ai-alert-" + f[0];
    var input = el("input", { class: "form-control form-control-sm", id: id, type: "number", min: "0", step: "any", "data-metric": f[0],
      value: byMetric[f[0]] ? byMetric[f[0]].max : null, placeholder: "no alert" });
    return el("div", { class: "col-6 col-md-3 col-xl" }, el("label", { class: "form-label small mb-0", for: id, text: f[1] + (f[2] ? " (ms)" : "") }), input);
  }));
}
$("ai-alerts-form").addEventListener("submit", async function (e) {
  e.preventDefault();
  var minutes = Number($("ai-alerts-minutes").value);
  var alerts = Array.from($("ai-alerts-fields").querySelectorAll("input[data-metric]"))
    .filter(function (input) { return input.value !== ""; })
    .map(function (input) { return { metric: input.getAttribute("data-metric"), max: Number(input.value), minutes: minutes }; });
  try { await api("PUT", "/api/ai-health/alerts", { alerts: alerts }); toast("Alerts saved", "success"); }
  catch (err) { toast(err.message, "danger"); }
});
