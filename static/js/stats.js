/* The stat cards and charts over the current filters. They are fetched
 * when the filters change, and then pushed by the server over the dashboard
 * socket as they change (one computation per filter for every dashboard,
 * docs/protocol.md), so nothing polls. They follow the filters but not the
 * text search: a search finds conversations; the figures describe them all. */
import { $, api, el, state } from "./core.js";
import { currentFilters } from "./hash.js";

function statsFilters() {
  var q = currentFilters(); q.delete("status"); q.delete("q");
  var filters = {};
  q.forEach(function (value, name) { filters[name] = value; });
  return filters;
}
function sameFilters(a, b) {
  var text = function (o) { return Object.keys(o).sort().map(function (k) { return k + "=" + o[k]; }).join("&"); };
  return text(a) === text(b);
}
/* Asks the server to push the current filters' stats (again after a reconnect). */
export function subscribeStats() {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify({ type: "stats", filters: statsFilters() }));
}
export function onStatsFrame(frame) {
  if (sameFilters(frame.filters, statsFilters())) renderStats(frame.stats);
}
export async function loadStats() {
  var filters = statsFilters();
  subscribeStats();
  var stats;
  try { stats = await api("GET", "/api/sessions/stats?" + new URLSearchParams(filters)); } catch (e) { return; }
  if (sameFilters(filters, statsFilters())) renderStats(stats);
}
function renderStats(stats) {
  var badgeEl = $("escalation-badge");
  badgeEl.textContent = stats.open_escalations;
  badgeEl.classList.toggle("d-none", !stats.open_escalations);
  var cards = [
    ["Complete", stats.by_completion.complete, "complete"], ["In progress", stats.by_completion.in_progress, ""],
    ["Incomplete", stats.by_completion.incomplete, ""], ["QA unchecked", stats.by_qa_status.unchecked, ""],
    ["QA passed", stats.by_qa_status.passed, ""], ["QA issue", stats.by_qa_status.issue, "issue"],
    ["QA fixed", stats.by_qa_status.fixed, ""],
    ["Completion rate", Math.round(stats.completion_rate * 100) + " %", ""],
    ["Messages / session", stats.messages_per_session.toFixed(1), ""],
    ["Customer rating", stats.csat.responses ? stats.csat.average.toFixed(1) + " ★ (" + stats.csat.responses + ")" : "—", "csat"],
    ["Open escalations", stats.escalations.unassigned + " unassigned • " + stats.escalations.in_progress + " in progress", "escalations"]];
  $("stat-cards").replaceChildren.apply($("stat-cards"), cards.map(function (c) {
    return el("div", { class: "col-6 col-md-3 col-xl" }, el("div", { class: "card card-body py-2 stat " + c[2], "data-stat": c[0] },
      el("div", { class: "small text-body-secondary", text: c[0] }), el("div", { class: "value", text: c[1] })));
  }));
  if (typeof Chart === "undefined") return;
  var days = stats.per_day.map(function (d) { return d.day; });
  chart("days", "chart-days", "line", { labels: days, datasets: [
    { label: "Sessions", data: stats.per_day.map(function (d) { return d.sessions; }), tension: 0.25 },
    { label: "Completions", data: stats.per_day.map(function (d) { return d.completions; }), tension: 0.25 }] });
  chart("qa", "chart-qa", "doughnut", { labels: ["unchecked", "passed", "issue", "fixed"], datasets: [
    { data: ["unchecked", "passed", "issue", "fixed"].map(function (k) { return stats.by_qa_status[k]; }),
      backgroundColor: ["#adb5bd", "#198754", "#dc3545", "#0d6efd"] }] });
  var latency = stats.ai_response_ms;
  chart("latency", "chart-latency", "bar", { labels: ["median", "p90"], datasets: [
    { label: "ms", data: [latency.median || 0, latency.p90 || 0], backgroundColor: "#6f42c1" }] });
  // The agent's own time per reply, in whole milliseconds: an agent that
  // answers at once (the demo agent) reads 0, which the text says rather
  // than leaving an empty-looking chart.
  $("latency-summary").textContent = !latency.replies ? "No AI replies in this range."
    : "Median " + latency.median + " ms, p90 " + latency.p90 + " ms over " + latency.replies + " replies" +
      (latency.p90 < 1 ? " (under 1 ms: the agent answers at once)." : ".");
}
function chart(name, canvas, type, data) {
  if (state.charts[name]) { state.charts[name].data = data; state.charts[name].update(); return; }
  state.charts[name] = new Chart($(canvas), { type: type, data: data,
    // Counts and times start at zero, or 31 of 32 looks like nothing.
    options: { animation: false, plugins: { legend: { display: type !== "bar" } }, maintainAspectRatio: false,
      scales: type === "doughnut" ? {} : { y: { beginAtZero: true } } } });
}
