/* Email to leads in the session view (docs/api.md "Email to leads"): the
 * session's emails with what Resend reported (live: `email` frames on the
 * dashboard socket), and the "Email the lead" dialog: pick a template, see
 * what the server filled, give the rest, preview, send. */
import { $, api, el, state, toast, when } from "./core.js";

var STATUS_BADGE = { queued: "secondary", failed: "danger", sent: "info", delivered: "primary", opened: "success",
                     clicked: "success", bounced: "danger", complained: "warning" };
var shown = {}; // email id -> email, for the session on screen

function flagText(flag, address) {
  return flag ? (address || "This address") + " " + flag.reason + " on " + when(flag.at) + ": emails to it may not arrive." : "";
}
export function showEmails(emails, flag) {
  shown = {};
  (emails || []).forEach(function (e) { shown[e.id] = e; });
  $("s-email-flag").textContent = flagText(flag, state.session && state.session.customer.email);
  $("s-email-flag").hidden = !flag;
  render();
}
// Emails only move forward (status, then counts), so of two copies the one
// further along is the newer: a send's answer can arrive after the frame
// that already reports the email sent.
var ORDER = ["queued", "failed", "sent", "delivered", "opened", "clicked", "bounced", "complained"];
function progress(e) { return ORDER.indexOf(e.status) * 1e6 + e.open_count + e.click_count; }
/** An `email` frame, or an email this page just queued. */
export function onEmail(email) {
  var known = shown[email.id];
  if (known && progress(known) > progress(email)) return;
  shown[email.id] = email;
  render();
}
function render() {
  var list = Object.keys(shown).map(function (id) { return shown[id]; })
    .sort(function (a, b) { return a.created_at < b.created_at ? -1 : 1; });
  $("s-emails-none").hidden = list.length > 0;
  $("s-emails").replaceChildren.apply($("s-emails"), list.map(function (e) {
    var counts = "opened " + e.open_count + " · clicked " + e.click_count;
    return el("li", { class: "border-bottom py-1", "data-email": e.id, "data-status": e.status },
      el("div", { class: "d-flex justify-content-between gap-2" }, el("strong", { text: e.subject }),
        el("span", { class: "badge text-bg-" + (STATUS_BADGE[e.status] || "secondary"), text: e.status })),
      el("div", { class: "text-body-secondary", text: "to " + e.to + (e.sent_by ? " · by " + e.sent_by : "") + " · " + when(e.created_at) }),
      el("div", { class: "email-counts", text: counts }),
      e.error ? el("div", { class: "text-danger", text: e.error }) : null,
      e.clicked_links.length ? el("ul", { class: "mb-0 ps-3" }, ...e.clicked_links.map(function (link) { return el("li", { text: link }); })) : null);
  }));
}

// The dialog.
var templates = [];
var previewTimer = null;
function chosen() { return templates.find(function (t) { return t.id === $("compose-template").value; }); }
function variables() {
  var values = {};
  $("compose-variables").querySelectorAll("input[data-variable]").forEach(function (input) {
    if (input.value.trim()) values[input.getAttribute("data-variable")] = input.value;
  });
  return values;
}
function variableInputs(names, known, missing) {
  var typed = variables();
  $("compose-variables").replaceChildren.apply($("compose-variables"), names.map(function (name) {
    var id = "compose-var-" + name;
    var input = el("input", { class: "form-control form-control-sm" + (missing.indexOf(name) >= 0 && !typed[name] ? " is-invalid" : ""),
      id: id, "data-variable": name, value: typed[name] || known[name] || "" });
    input.addEventListener("input", schedulePreview);
    return el("div", { class: "col-md-6" }, el("label", { class: "form-label small mb-0 variable-chip", for: id, text: "{{" + name + "}}" }), input);
  }));
}
async function preview() {
  var t = chosen();
  if (!t) return;
  try {
    var p = await api("POST", "/api/email-templates/preview", { template_id: t.id, session_id: state.watching, variables: variables() });
    if (!$("compose-variables").querySelector("input") || $("compose-variables").getAttribute("data-template") !== t.id) {
      $("compose-variables").setAttribute("data-template", t.id);
      $("compose-variables").replaceChildren();
      variableInputs(p.variables, p.values, p.missing);
    } else {
      $("compose-variables").querySelectorAll("input[data-variable]").forEach(function (input) {
        input.classList.toggle("is-invalid", p.missing.indexOf(input.getAttribute("data-variable")) >= 0);
      });
    }
    $("compose-subject").textContent = p.subject;
    $("compose-text").textContent = p.text;
    $("compose-error").textContent = p.missing.length ? "Still needed: " + p.missing.join(", ") : "";
  } catch (err) { $("compose-error").textContent = err.message; }
}
function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(preview, 250);
}
$("s-email").addEventListener("click", async function () {
  try { templates = (await api("GET", "/api/email-templates?active=true")).templates; } catch (err) { toast(err.message, "danger"); return; }
  $("compose-template").replaceChildren.apply($("compose-template"), templates.map(function (t) {
    return el("option", { value: t.id, text: t.name + " (" + t.category.replace("_", " ") + ")" });
  }));
  $("compose-to").value = (state.session && state.session.customer.email) || "";
  $("compose-flag").textContent = $("s-email-flag").textContent;
  $("compose-flag").hidden = $("s-email-flag").hidden;
  $("compose-variables").replaceChildren();
  $("compose-error").textContent = "";
  bootstrap.Modal.getOrCreateInstance($("compose")).show();
  preview();
});
$("compose-template").addEventListener("change", function () { $("compose-variables").replaceChildren(); preview(); });
$("compose-form").addEventListener("submit", async function (e) {
  e.preventDefault();
  var t = chosen();
  if (!t) return;
  $("compose-send").disabled = true;
  try {
    var sent = await api("POST", "/api/sessions/" + state.watching + "/emails", { template_id: t.id, to: $("compose-to").value, variables: variables() });
    onEmail(sent.email);
    bootstrap.Modal.getOrCreateInstance($("compose")).hide();
    toast(sent.warning ? "Email queued. " + sent.warning : "Email queued", sent.warning ? "warning" : "success");
  } catch (err) { $("compose-error").textContent = err.message; }
  finally { $("compose-send").disabled = false; }
});
