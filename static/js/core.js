/* Shared helpers of the dashboard: the page's state, element building
 * (text only, never HTML: chat text is hostile), toasts, role checks, the
 * JSON API client and the confirm dialog. */

export var $ = function (id) { return document.getElementById(id); };
export var state = { me: null, csrf: null, socket: null, rows: [], matches: {}, total: 0, page: 1, perPage: 25, watching: null,
              lastSeq: 0, selected: new Set(), charts: {}, totalEstimated: false, reconnect: 0,
              shown: {} /* session id -> updated_at of the newest summary shown */ };

/** Builds an element; string children become text nodes (never HTML). */
export function el(tag, attrs) {
  var node = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (k) {
    if (k === "class") node.className = attrs[k];
    else if (k === "text") node.textContent = attrs[k];
    else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), attrs[k]);
    else if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) node.setAttribute(k, attrs[k]);
  });
  for (var i = 2; i < arguments.length; i++) {
    var child = arguments[i];
    if (child === null || child === undefined) continue;
    node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
  return node;
}
export function when(iso) { return iso ? new Date(iso).toLocaleString() : "—"; }
export function toast(message, kind) {
  var t = el("div", { class: "toast align-items-center text-bg-" + (kind || "secondary") + " border-0", role: "status" },
    el("div", { class: "d-flex" }, el("div", { class: "toast-body", text: message }),
      el("button", { type: "button", class: "btn-close btn-close-white me-2 m-auto", "data-bs-dismiss": "toast", "aria-label": "Close" })));
  $("toasts").appendChild(t);
  var bt = new bootstrap.Toast(t, { delay: 3500 });
  t.addEventListener("hidden.bs.toast", function () { t.remove(); });
  bt.show();
}
export function can(roles) { return state.me && roles.split(",").indexOf(state.me.role) >= 0; }
export function applyRoles(root) {
  (root || document).querySelectorAll("[data-roles]").forEach(function (node) {
    node.hidden = !can(node.getAttribute("data-roles"));
    if (node.classList.contains("nav-item")) node.classList.toggle("d-none", node.hidden);
  });
}

export async function api(method, path, body) {
  var headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  var response = await fetch(path, { method: method, headers: headers, credentials: "same-origin",
                                     body: body === undefined ? undefined : JSON.stringify(body) });
  var data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (response.status === 401 && path !== "/api/auth/login") { hooks.signedOut(); throw new Error("signed out"); }
  if (!response.ok) {
    var message = data && data.error ? data.error.message : response.statusText;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return data;
}
export function confirmAction(title, body) {
  return new Promise(function (resolve) {
    $("confirm-title").textContent = title;
    $("confirm-body").textContent = body;
    var modal = bootstrap.Modal.getOrCreateInstance($("confirm"));
    var ok = $("confirm-ok");
    var done = function (answer) { ok.onclick = null; $("confirm").removeEventListener("hidden.bs.modal", onHide); resolve(answer); };
    var onHide = function () { done(false); };
    ok.onclick = function () { $("confirm").removeEventListener("hidden.bs.modal", onHide); modal.hide(); done(true); };
    $("confirm").addEventListener("hidden.bs.modal", onHide);
    modal.show();
  });
}

/** Paging under a list, the same for every list: "first–last of total"
 * and Previous / Next, which call `go(page)`. */
export function pager(nav, page, perPage, shown, total, go) {
  var first = (page - 1) * perPage;
  var prev = el("button", { class: "btn btn-sm btn-outline-secondary", type: "button", text: "Previous", disabled: page <= 1 ? "disabled" : null });
  var next = el("button", { class: "btn btn-sm btn-outline-secondary", type: "button", text: "Next", disabled: first + shown >= total ? "disabled" : null });
  prev.addEventListener("click", function () { go(page - 1); });
  next.addEventListener("click", function () { go(page + 1); });
  nav.replaceChildren(el("span", { class: "small text-body-secondary page-info", text: total ? (first + 1) + "–" + (first + shown) + " of " + total : "none" }),
    el("div", { class: "btn-group" }, prev, next));
}

/** The snippet that puts site `key`'s widget on a page. */
export function embedSnippet(key) {
  return '<script src="' + location.origin + '/widget.js" data-site="' + key + '" async></script>';
}

/** A button that copies `text` to the clipboard and says so. */
export function copyButton(text, label) {
  var button = el("button", { class: "btn btn-sm btn-outline-secondary", type: "button", text: label || "Copy" });
  button.addEventListener("click", async function () {
    try { await navigator.clipboard.writeText(text); toast("Copied", "success"); }
    catch (e) { toast("Could not copy: select the text and copy it by hand", "warning"); }
  });
  return button;
}

/** Set by main.js: what to do when the server says we are signed out. */
/** Saves `data` as a pretty-printed JSON file named `name`. */
export function downloadJson(name, data) {
  var blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
  var a = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.appendChild(a); a.click(); a.remove();
}
export var hooks = { signedOut: function () {} };

export var BADGE = { complete: "success", in_progress: "info", incomplete: "secondary", unchecked: "secondary", passed: "success",
              issue: "danger", fixed: "primary", active: "success", resolved: "secondary", escalated: "warning", archived: "dark" };
export function badge(value) { return el("span", { class: "badge text-bg-" + (BADGE[value] || "secondary"), text: String(value).replace("_", " ") }); }
export function customerName(s) { return s.customer.name || s.customer.email || s.customer.phone || s.external_id || "Anonymous visitor"; }
