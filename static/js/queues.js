/* Escalations (priority, claim), the errors log and the delivery log. */
import { $, api, badge, can, customerName, el, pager, toast, when } from "./core.js";

export async function loadEscalations() {
  var data = await api("GET", "/api/escalations");
  $("escalations-body").replaceChildren.apply($("escalations-body"), data.sessions.map(function (s) {
    var priority = el("select", { class: "form-select form-select-sm w-auto", "aria-label": "Priority", disabled: can("admin,developer,agent") ? null : "disabled" });
    ["low", "normal", "high", "urgent"].forEach(function (p) { var o = el("option", { text: p }); o.selected = p === s.priority; priority.appendChild(o); });
    priority.addEventListener("change", function () { api("PUT", "/api/sessions/" + s.id, { priority: priority.value }).catch(function (e) { toast(e.message, "danger"); }); });
    // Unassigned: "Claim"; once someone has it, their name. Handlers can
    // resolve it from here (it goes back to the AI, the visitor is told).
    var handles = can("admin,developer,agent");
    var who = s.assignee ? el("span", { class: "assignee", text: s.assignee }) : el("button", { class: "btn btn-sm btn-outline-primary", type: "button", text: "Claim", hidden: handles ? null : "hidden" });
    if (!s.assignee) who.addEventListener("click", function () { api("POST", "/api/sessions/" + s.id + "/claim").then(loadEscalations).catch(function (e) { toast(e.message, "danger"); }); });
    var resolve = el("button", { class: "btn btn-sm btn-outline-success", type: "button", text: "Resolve", hidden: handles ? null : "hidden" });
    resolve.addEventListener("click", function () {
      api("PUT", "/api/sessions/" + s.id, { status: "resolved" }).then(function () { toast("Resolved", "success"); loadEscalations(); }).catch(function (e) { toast(e.message, "danger"); });
    });
    return el("tr", { "data-id": s.id }, el("td", {}, el("a", { href: "#/sessions/" + s.id, text: customerName(s) })), el("td", { text: when(s.escalated_at) }),
      el("td", {}, priority), el("td", {}, who), el("td", {}, resolve));
  }));
  if (!data.sessions.length) $("escalations-body").appendChild(el("tr", {}, el("td", { colspan: "5", class: "text-body-secondary", text: "Nothing escalated." })));
}
var PER_PAGE = 50;
var errorsPage = 1, deliveriesPage = 1;
function sessionLink(id) { return id ? el("a", { href: "#/sessions/" + id, text: "open" }) : "—"; }
export async function loadErrors(page) {
  errorsPage = page || 1;
  var data = await api("GET", "/api/errors?per_page=" + PER_PAGE + "&page=" + errorsPage);
  $("errors-body").replaceChildren.apply($("errors-body"), data.errors.map(function (e) {
    var details = e.details ? el("details", {}, el("summary", { class: "small", text: "details" }), el("pre", { class: "small mb-0 payload", text: JSON.stringify(e.details, null, 2) })) : null;
    return el("tr", {}, el("td", { class: "small", text: when(e.created_at) }), el("td", { text: e.source }), el("td", { text: e.workflow || "" }),
      el("td", {}, e.message, details), el("td", {}, sessionLink(e.session_id)));
  }));
  if (!data.errors.length) $("errors-body").appendChild(el("tr", {}, el("td", { colspan: "5", class: "text-body-secondary", text: "No errors recorded." })));
  pager($("errors-pager"), errorsPage, PER_PAGE, data.errors.length, data.total, loadErrors);
}
$("d-status").addEventListener("change", function () { loadDeliveries(1); });
export async function loadDeliveries(page) {
  deliveriesPage = page || 1;
  var status = $("d-status").value;
  var data = await api("GET", "/api/deliveries?per_page=" + PER_PAGE + "&page=" + deliveriesPage + (status ? "&status=" + status : ""));
  $("deliveries-body").replaceChildren.apply($("deliveries-body"), data.deliveries.map(function (d) {
    var retry = el("button", { class: "btn btn-sm btn-outline-primary", type: "button", text: "Retry" });
    retry.hidden = !can("admin,developer") || ["dead", "failed", "skipped"].indexOf(d.status) < 0;
    retry.addEventListener("click", function () {
      api("POST", "/api/deliveries/" + d.id + "/retry").then(function () { toast("Queued again", "success"); loadDeliveries(deliveriesPage); })
        .catch(function (e) { toast(e.message, "danger"); });
    });
    var status = badge(d.status === "delivered" ? "passed" : d.status === "dead" ? "issue" : "unchecked");
    status.textContent = d.status;
    var payload = el("details", {}, el("summary", { class: "small", text: "show" }), el("pre", { class: "small mb-0 payload", text: JSON.stringify(d.payload, null, 2) }));
    return el("tr", { "data-delivery": d.id }, el("td", { class: "small", text: when(d.created_at) }), el("td", { text: d.event_type }),
      el("td", {}, sessionLink(d.session_id)), el("td", {}, status),
      el("td", { text: d.attempts }), el("td", { class: "small", text: d.last_error || "" }), el("td", {}, payload), el("td", {}, retry));
  }));
  if (!data.deliveries.length) $("deliveries-body").appendChild(el("tr", {}, el("td", { colspan: "8", class: "text-body-secondary", text: "No deliveries." })));
  pager($("deliveries-pager"), deliveriesPage, PER_PAGE, data.deliveries.length, data.total, loadDeliveries);
}
