/* Canned responses. In the reply box, "/" and the start of a shortcut offer
 * the matching responses (arrow keys to choose, Enter or Tab to insert,
 * Escape to close); the text goes in with its variables expanded for this
 * conversation. In Settings, admins add and delete them. */
import { $, api, confirmAction, el, state, toast } from "./core.js";

var loaded = null; // {responses, variables} from the API, until Settings changes them
var offered = [];
var active = 0;

async function responses() {
  if (!loaded) loaded = await api("GET", "/api/canned-responses");
  return loaded;
}
function expand(text) {
  var s = state.session || { customer: {} };
  var values = { "customer.name": s.customer.name || "", "customer.email": s.customer.email || "",
    "agent.name": state.me ? state.me.display_name : "", booking_url: loaded.variables.booking_url };
  return text.replace(/\{\{\s*([a-z_.]+)\s*\}\}/g, function (whole, name) { return name in values ? values[name] : whole; });
}
function close() {
  offered = [];
  $("canned-menu").classList.remove("show");
  $("canned-menu").replaceChildren();
  $("s-reply-text").setAttribute("aria-expanded", "false");
}
function render() {
  if (!offered.length) return close();
  $("canned-menu").replaceChildren.apply($("canned-menu"), offered.map(function (r, i) {
    var item = el("button", { type: "button", class: "dropdown-item" + (i === active ? " active" : ""), "data-shortcut": r.shortcut,
      onmousedown: function (e) { e.preventDefault(); insert(r); } }, el("strong", { text: "/" + r.shortcut }), " " + r.title);
    return el("li", { role: "option", "aria-selected": String(i === active) }, item);
  }));
  $("canned-menu").classList.add("show");
  $("s-reply-text").setAttribute("aria-expanded", "true");
}
function insert(r) {
  $("s-reply-text").value = expand(r.text);
  close();
  $("s-reply-text").focus();
}
$("s-reply-text").addEventListener("input", async function () {
  var typed = /^\/([a-z0-9_-]*)$/.exec($("s-reply-text").value);
  if (!typed) return close();
  try {
    var all = (await responses()).responses;
    offered = all.filter(function (r) { return r.shortcut.indexOf(typed[1]) === 0; });
    active = 0;
    render();
  } catch (err) { toast(err.message, "danger"); }
});
// Capture: runs before the reply box's own Enter-to-send.
$("s-reply-text").addEventListener("keydown", function (e) {
  if (!offered.length) return;
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    active = (active + (e.key === "ArrowDown" ? 1 : offered.length - 1)) % offered.length;
    render();
  } else if (e.key === "Enter" || e.key === "Tab") {
    e.preventDefault(); e.stopImmediatePropagation();
    insert(offered[active]);
  } else if (e.key === "Escape") { e.preventDefault(); close(); }
}, true);
$("s-reply-text").addEventListener("blur", close);

/** Settings: the list, with delete buttons. */
export async function loadCannedSettings() {
  loaded = null;
  var data = await responses();
  $("canned-body").replaceChildren.apply($("canned-body"), data.responses.map(function (r) {
    var remove = el("button", { type: "button", class: "btn btn-sm btn-outline-danger", "aria-label": "Delete /" + r.shortcut }, "Delete");
    remove.addEventListener("click", async function () {
      if (!(await confirmAction("Delete /" + r.shortcut + "?", "Staff can no longer insert it."))) return;
      api("DELETE", "/api/canned-responses/" + r.id).then(loadCannedSettings).catch(function (e) { toast(e.message, "danger"); });
    });
    return el("tr", { "data-shortcut": r.shortcut }, el("td", {}, el("code", { text: "/" + r.shortcut })), el("td", { text: r.title }),
      el("td", { class: "small", text: r.text }), el("td", {}, remove));
  }));
}
$("canned-form").addEventListener("submit", function (e) {
  e.preventDefault();
  api("POST", "/api/canned-responses", { shortcut: $("c-shortcut").value.trim(), title: $("c-title").value, text: $("c-text").value })
    .then(function () { $("canned-form").reset(); toast("Canned response added", "success"); return loadCannedSettings(); })
    .catch(function (err) { toast(err.message, "danger"); });
});
