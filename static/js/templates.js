/* Email templates (docs/api.md "Email to leads"): the list with usage and
 * open/click/bounce rates, the active switch, and the editor with the
 * variables the text uses and a live preview against a session or sample
 * values. Everyone reads; handlers add; a template's author or an admin
 * changes or deletes it. */
import { $, api, can, confirmAction, el, state, toast } from "./core.js";

var SAMPLE = { customer_name: "Jane Sample", customer_email: "jane@example.com", customer_phone: "+1 555 0100",
               agent_name: "Your name", booking_url: "https://example.com/book", site_name: "Your site" };
var previewTimer = null;

function percent(rate) { return rate === null || rate === undefined ? "—" : Math.round(rate * 100) + " %"; }
function mayChange(t) { return can("admin") || (can("developer,agent") && t.created_by === state.me.username); }

export async function loadTemplates() {
  var data = await api("GET", "/api/email-templates");
  $("t-known").textContent = data.variables.map(function (v) { return "{{" + v + "}}"; }).join(", ");
  if (!$("t-category").options.length) {
    data.categories.forEach(function (c) { $("t-category").appendChild(el("option", { value: c, text: c.replace("_", " ") })); });
  }
  $("templates-body").replaceChildren.apply($("templates-body"), data.templates.map(function (t) {
    var editable = mayChange(t);
    var on = el("input", { class: "form-check-input", type: "checkbox", role: "switch", "aria-label": "Active: " + t.name, disabled: editable ? null : "disabled" });
    on.checked = t.active;
    on.addEventListener("change", function () {
      api("PUT", "/api/email-templates/" + t.id, { active: on.checked }).then(loadTemplates).catch(function (e) { toast(e.message, "danger"); });
    });
    var edit = el("button", { class: "btn btn-sm btn-outline-primary", type: "button", text: "Edit", hidden: editable ? null : "hidden" });
    edit.addEventListener("click", function () { startEditing(t); });
    var remove = el("button", { class: "btn btn-sm btn-outline-danger", type: "button", text: "Delete", hidden: editable ? null : "hidden" });
    remove.addEventListener("click", async function () {
      if (await confirmAction("Delete template " + t.name + "?", "Emails already sent from it keep their text.")) {
        api("DELETE", "/api/email-templates/" + t.id).then(loadTemplates).catch(function (e) { toast(e.message, "danger"); });
      }
    });
    var s = t.stats;
    return el("tr", { "data-template": t.name }, el("td", {}, el("div", { text: t.name }), el("div", { class: "small text-body-secondary", text: t.variables.map(function (v) { return "{{" + v + "}}"; }).join(" ") })),
      el("td", { text: t.category.replace("_", " ") }), el("td", { text: t.usage_count }), el("td", { text: s.sent }),
      el("td", { class: "open-rate", text: percent(s.open_rate) }), el("td", { class: "click-rate", text: percent(s.click_rate) }),
      el("td", { text: percent(s.bounce_rate) }), el("td", {}, el("div", { class: "form-check form-switch" }, on)),
      el("td", { class: "text-nowrap" }, edit, " ", remove));
  }));
}
function startEditing(t) {
  $("t-id").value = t.id; $("t-name").value = t.name; $("t-category").value = t.category;
  $("t-subject").value = t.subject; $("t-body").value = t.body; $("t-active").checked = t.active;
  $("t-form-title").textContent = "Edit " + t.name; $("t-save").textContent = "Save template"; $("t-cancel").hidden = false;
  schedulePreview();
  $("t-name").focus();
}
function stopEditing() {
  $("template-form").reset(); $("t-id").value = "";
  $("t-form-title").textContent = "New template"; $("t-save").textContent = "Add template"; $("t-cancel").hidden = true;
  $("t-variables").replaceChildren(); $("t-preview-subject").textContent = ""; $("t-preview-text").textContent = ""; $("t-preview-error").textContent = "";
}
async function preview() {
  if (!$("t-subject").value.trim() || !$("t-body").value.trim()) return;
  var session = $("t-preview-session").value.trim();
  var body = { subject: $("t-subject").value, body: $("t-body").value };
  try {
    var first = await api("POST", "/api/email-templates/preview", session ? Object.assign({ session_id: session }, body) : body);
    var p = first;
    if (!session) {
      // Sample values for what a session would fill.
      var samples = {};
      first.variables.forEach(function (v) { if (SAMPLE[v] && !first.values[v]) samples[v] = SAMPLE[v]; });
      if (Object.keys(samples).length) p = await api("POST", "/api/email-templates/preview", Object.assign({ variables: samples }, body));
    }
    $("t-variables").replaceChildren.apply($("t-variables"), p.variables.map(function (v) {
      var asked = p.missing.indexOf(v) >= 0;
      return el("span", { class: "badge variable-chip me-1 " + (asked ? "text-bg-warning" : "text-bg-secondary"), title: asked ? "asked of the sender" : "filled by the server", text: "{{" + v + "}}" });
    }));
    $("t-preview-subject").textContent = p.subject;
    $("t-preview-text").textContent = p.text;
    $("t-preview-error").textContent = "";
  } catch (err) { $("t-preview-error").textContent = err.message; }
}
function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(preview, 300);
}
["t-subject", "t-body", "t-preview-session"].forEach(function (id) { $(id).addEventListener("input", schedulePreview); });
$("t-cancel").addEventListener("click", stopEditing);
$("template-form").addEventListener("submit", async function (e) {
  e.preventDefault();
  var id = $("t-id").value;
  var body = { name: $("t-name").value, category: $("t-category").value, subject: $("t-subject").value, body: $("t-body").value, active: $("t-active").checked };
  try {
    await api(id ? "PUT" : "POST", id ? "/api/email-templates/" + id : "/api/email-templates", body);
    toast(id ? "Template saved" : "Template added", "success");
    stopEditing();
    loadTemplates();
  } catch (err) { toast(err.message, "danger"); }
});
