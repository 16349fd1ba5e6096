/* Escalations (priority, claim), the errors log and the delivery log. */
import { $, api, badge, can, customerName, el, toast, when } from "./core.js";

export async function loadEscalations() {
  var data = await api("GET", "/api/escalations");
  $("escalations-body").replaceChildren.apply($("escalations-body"), data.sessions.map(function (s) {
    var priority = el("select", { class: "form-select form-select-sm w-auto", "aria-label": "Priority", disabled: can("admin,developer,agent") ? null : "disabled" });
    ["low", "normal", "high", "urgent"].forEach(function (p) { var o = el("option", { text: p }); o.selected = p === s.priority; priority.appendChild(o); });
    priority.addEventListener("change", function () { api("PUT", "/api/sessions/" + s.id, { priority: priority.value }).catch(function (e) { toast(e.message, "danger"); }); });
    var claim = el("button", { class: "btn btn-sm btn-outline-primary", type: "button", text: "Claim" });
    claim.hidden = !can("admin,developer,agent");
    claim.addEventListener("click", function () { api("POST", "/api/sessions/" + s.id + "/claim").then(loadEscalations).catch(function (e) { toast(e.message, "danger"); }); });
    return el("tr", {}, el("td", {}, el("a", { href: "#/sessions/" + s.id, text: customerName(s) })), el("td", { text: when(s.escalated_at) }),
      el("td", {}, priority), el("td", { text: s.assignee || "—" }), el("td", {}, claim));
  }));
  if (!data.sessions.length) $("escalations-body").appendChild(el("tr", {}, el("td", { colspan: "5", class: "text-body-secondary", text: "Nothing escalated." })));
}
export async function loadErrors() {
  var data = await api("GET", "/api/errors?per_page=100");
  $("errors-body").replaceChildren.apply($("errors-body"), data.errors.map(function (e) {
    return el("tr", {}, el("td", { class: "small", text: when(e.created_at) }), el("td", { text: e.source }), el("td", { text: e.workflow || "" }),
      el("td", { text: e.message }), el("td", {}, e.session_id ? el("a", { href: "#/sessions/" + e.session_id, text: "open" }) : null));
  }));
}
$("d-status").addEventListener("change", loadDeliveries);
export async function loadDeliveries() {
  var status = $("d-status").value;
  var data = await api("GET", "/api/deliveries?per_page=100" + (status ? "&status=" + status : ""));
  $("deliveries-body").replaceChildren.apply($("deliveries-body"), data.deliveries.map(function (d) {
    var retry = el("button", { class: "btn btn-sm btn-outline-primary", type: "button", text: "Retry" });
    retry.hidden = !can("admin,developer") || ["dead", "failed", "skipped"].indexOf(d.status) < 0;
    retry.addEventListener("click", function () { api("POST", "/api/deliveries/" + d.id + "/retry").then(function () { toast("Queued again", "success"); loadDeliveries(); }).catch(function (e) { toast(e.message, "danger"); }); });
    return el("tr", {}, el("td", { class: "small", text: when(d.created_at) }), el("td", { text: d.event_type }), el("td", {}, badge(d.status === "delivered" ? "passed" : d.status === "dead" ? "issue" : "unchecked")),
      el("td", { text: d.attempts }), el("td", { class: "small", text: d.last_error || "" }), el("td", {}, retry));
  }));
  $("deliveries-body").querySelectorAll(".badge").forEach(function (b, i) { b.textContent = data.deliveries[i].status; });
}
