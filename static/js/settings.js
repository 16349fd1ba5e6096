/* Settings (admin): completion rules with the rule tester, canned
 * responses (canned.js) and sites. */
import { $, api, confirmAction, copyButton, el, embedSnippet, toast, when } from "./core.js";
import { loadCannedSettings } from "./canned.js";
import { loadAlertSettings } from "./aihealth.js";

export async function loadSettings() {
  loadCannedSettings().catch(function (e) { toast(e.message, "danger"); });
  loadAlertSettings().catch(function (e) { toast(e.message, "danger"); });
  var rules = await api("GET", "/api/completion-rules");
  $("booking-url").textContent = rules.booking_url;
  $("rules-body").replaceChildren.apply($("rules-body"), rules.rules.map(function (r) {
    var on = el("input", { class: "form-check-input", type: "checkbox", role: "switch", "aria-label": "Enable " + r.name });
    on.checked = r.enabled;
    on.addEventListener("change", function () { api("PUT", "/api/completion-rules/" + r.id, { enabled: on.checked }).then(loadSettings).catch(function (e) { toast(e.message, "danger"); }); });
    var pattern = el("input", { class: "form-control form-control-sm", value: r.pattern, "aria-label": "Pattern of " + r.name });
    pattern.addEventListener("change", function () {
      api("PUT", "/api/completion-rules/" + r.id, { pattern: pattern.value }).then(function () { toast("Rule saved", "success"); loadSettings(); })
        .catch(function (e) { toast(e.message, "danger"); pattern.value = r.pattern; });
    });
    var remove = el("button", { class: "btn btn-sm btn-outline-danger", type: "button", text: "Delete" });
    remove.addEventListener("click", async function () {
      if (await confirmAction("Delete rule " + r.name + "?", "Conversations it completed stay complete.")) api("DELETE", "/api/completion-rules/" + r.id).then(loadSettings);
    });
    return el("tr", { "data-rule": r.name }, el("td", { text: r.name }), el("td", { text: r.kind }), el("td", {}, pattern), el("td", { text: r.fire_count }),
      el("td", { class: "small", text: when(r.last_fired_at) }), el("td", {}, el("div", { class: "form-check form-switch" }, on)), el("td", {}, remove));
  }));
  var sites = await api("GET", "/api/sites");
  $("sites-body").replaceChildren.apply($("sites-body"), sites.sites.map(function (site) {
    var field = function (name, value, label) {
      var input = el("input", { class: "form-control form-control-sm", value: value || "", "aria-label": label + " of " + site.key });
      input.addEventListener("change", function () {
        var body = {}; body[name] = name === "allowed_origins" ? input.value.split(",").map(function (o) { return o.trim(); }).filter(Boolean) : (input.value || null);
        api("PUT", "/api/sites/" + encodeURIComponent(site.key), body).then(function () { toast("Site saved", "success"); }).catch(function (e) { toast(e.message, "danger"); loadSettings(); });
      });
      return input;
    };
    var colour = el("input", { class: "form-control form-control-sm form-control-color", type: "color", value: site.color, "aria-label": "Colour of " + site.key });
    colour.addEventListener("change", function () {
      api("PUT", "/api/sites/" + encodeURIComponent(site.key), { color: colour.value }).then(function () { toast("Site saved", "success"); }).catch(function (e) { toast(e.message, "danger"); loadSettings(); });
    });
    var snippet = embedSnippet(site.key);
    var embed = el("div", { class: "d-flex gap-1 align-items-center" }, el("code", { class: "small user-select-all embed-snippet", text: snippet }), copyButton(snippet, "Copy"));
    var position = el("select", { class: "form-select form-select-sm", "aria-label": "Position of " + site.key });
    ["right", "left"].forEach(function (p) { var o = el("option", { text: p }); o.selected = p === site.position; position.appendChild(o); });
    position.addEventListener("change", function () { api("PUT", "/api/sites/" + encodeURIComponent(site.key), { position: position.value }).catch(function (e) { toast(e.message, "danger"); }); });
    var prechat = el("input", { class: "form-check-input", type: "checkbox", "aria-label": "Pre-chat form on " + site.key });
    prechat.checked = site.prechat_form;
    prechat.addEventListener("change", function () { api("PUT", "/api/sites/" + encodeURIComponent(site.key), { prechat_form: prechat.checked }).catch(function (e) { toast(e.message, "danger"); }); });
    var remove = el("button", { class: "btn btn-sm btn-outline-danger", type: "button", text: "Delete", disabled: site.key === "default" ? "disabled" : null });
    remove.addEventListener("click", async function () {
      if (await confirmAction("Delete site " + site.key + "?", "Widgets using this key stop working.")) api("DELETE", "/api/sites/" + encodeURIComponent(site.key)).then(loadSettings);
    });
    return el("tr", {}, el("td", {}, el("code", { text: site.key })), el("td", {}, field("name", site.name, "Name")),
      el("td", {}, field("allowed_origins", site.allowed_origins.join(", "), "Origins")), el("td", {}, field("greeting", site.greeting, "Greeting")),
      el("td", {}, colour), el("td", {}, field("email_from", site.email_from, "Email sender")), el("td", {}, position), el("td", {}, prechat), el("td", {}, embed), el("td", {}, remove));
  }));
}
$("rule-form").addEventListener("submit", function (e) {
  e.preventDefault();
  api("POST", "/api/completion-rules", { name: $("r-name").value, kind: $("r-kind").value, pattern: $("r-pattern").value })
    .then(function () { $("rule-form").reset(); toast("Rule added", "success"); loadSettings(); })
    .catch(function (err) { toast(err.message, "danger"); });
});
$("rule-test").addEventListener("submit", function (e) {
  e.preventDefault();
  api("POST", "/api/completion-rules/test", { text: $("r-test-text").value }).then(function (r) {
    $("r-test-result").textContent = r.rule ? "fires: " + r.rule : "no rule fires";
  });
});
$("site-form").addEventListener("submit", function (e) {
  e.preventDefault();
  var origins = $("st-origins").value.split(",").map(function (o) { return o.trim(); }).filter(Boolean);
  api("POST", "/api/sites", { key: $("st-key").value, name: $("st-name").value, allowed_origins: origins })
    .then(function () { $("site-form").reset(); toast("Site added", "success"); loadSettings(); })
    .catch(function (err) { toast(err.message, "danger"); });
});
