/* Users and API keys (admin). */
import { $, api, confirmAction, copyButton, el, state, toast, when } from "./core.js";

export async function loadUsers() {
  var users = await api("GET", "/api/users");
  $("users-body").replaceChildren.apply($("users-body"), users.users.map(function (u) {
    var role = el("select", { class: "form-select form-select-sm w-auto", "aria-label": "Role of " + u.username });
    ["admin", "developer", "qa", "agent"].forEach(function (r) { var o = el("option", { text: r }); o.selected = r === u.role; role.appendChild(o); });
    role.addEventListener("change", function () { api("PUT", "/api/users/" + u.id, { role: role.value }).then(loadUsers).catch(function (e) { toast(e.message, "danger"); loadUsers(); }); });
    var active = el("input", { class: "form-check-input", type: "checkbox", role: "switch", "aria-label": "Active: " + u.username });
    active.checked = !u.disabled;
    active.addEventListener("change", function () { api("PUT", "/api/users/" + u.id, { disabled: !active.checked }).then(loadUsers).catch(function (e) { toast(e.message, "danger"); loadUsers(); }); });
    var reset = el("button", { class: "btn btn-sm btn-outline-secondary", type: "button", text: "Reset password" });
    reset.addEventListener("click", function () {
      var password = prompt("New password for " + u.username + " (8+ characters)");
      if (password) api("PUT", "/api/users/" + u.id, { password: password }).then(function () { toast("Password changed", "success"); }).catch(function (e) { toast(e.message, "danger"); });
    });
    var shown = el("input", { class: "form-control form-control-sm", value: u.display_name, maxlength: "80", "aria-label": "Display name of " + u.username });
    shown.addEventListener("change", function () { api("PUT", "/api/users/" + u.id, { display_name: shown.value }).then(function () { toast("Display name saved", "success"); }).catch(function (e) { toast(e.message, "danger"); loadUsers(); }); });
    var mail = el("input", { class: "form-control form-control-sm", type: "email", value: u.email || "", "aria-label": "Email of " + u.username });
    mail.addEventListener("change", function () { api("PUT", "/api/users/" + u.id, { email: mail.value || null }).then(function () { toast("Email saved", "success"); }).catch(function (e) { toast(e.message, "danger"); loadUsers(); }); });
    var remove = el("button", { class: "btn btn-sm btn-outline-danger", type: "button", text: "Delete", hidden: u.id === state.me.id ? "hidden" : null });
    remove.addEventListener("click", async function () {
      if (await confirmAction("Delete " + u.username + "?", "Their sign-ins end. Their messages and QA history stay; their conversations become unassigned.")) {
        api("DELETE", "/api/users/" + u.id).then(function () { toast("User deleted", "success"); loadUsers(); }).catch(function (e) { toast(e.message, "danger"); });
      }
    });
    return el("tr", { "data-user": u.username }, el("td", { text: u.username }), el("td", {}, shown), el("td", {}, mail), el("td", {}, role), el("td", { class: "small", text: when(u.last_login_at) }),
      el("td", {}, el("div", { class: "form-check form-switch" }, active)), el("td", { class: "text-nowrap" }, reset, " ", remove));
  }));
  var keys = await api("GET", "/api/api-keys");
  $("keys-body").replaceChildren.apply($("keys-body"), keys.api_keys.map(function (k) {
    var revoke = el("button", { class: "btn btn-sm btn-outline-danger", type: "button", text: k.revoked_at ? "Revoked" : "Revoke", disabled: k.revoked_at ? "disabled" : null });
    revoke.addEventListener("click", async function () {
      if (await confirmAction("Revoke " + k.name + "?", "Clients using this key stop working at once.")) api("DELETE", "/api/api-keys/" + k.id).then(loadUsers);
    });
    return el("tr", {}, el("td", { text: k.name }), el("td", {}, el("code", { text: k.prefix + "…" })), el("td", { class: "small", text: when(k.created_at) }),
      el("td", { class: "small", text: when(k.last_used_at) }), el("td", {}, revoke));
  }));
}
$("user-form").addEventListener("submit", function (e) {
  e.preventDefault();
  api("POST", "/api/users", { username: $("u-name").value, password: $("u-password").value, role: $("u-role").value, email: $("u-email").value || null })
    .then(function () { $("user-form").reset(); toast("User added", "success"); loadUsers(); })
    .catch(function (err) { toast(err.message, "danger"); });
});
$("key-form").addEventListener("submit", function (e) {
  e.preventDefault();
  api("POST", "/api/api-keys", { name: $("k-name").value }).then(function (k) {
    $("key-form").reset();
    var box = $("new-key");
    box.replaceChildren(el("div", { text: "Copy this key now; it is not shown again:" }), el("code", { class: "user-select-all me-2", id: "new-key-value", text: k.key }),
      copyButton(k.key, "Copy key"));
    box.classList.remove("d-none");
    loadUsers();
  }).catch(function (err) { toast(err.message, "danger"); });
});
