/* Signing in and out. */
import { $, api, applyRoles, state } from "./core.js";
import { connectSocket } from "./socket.js";
import { route } from "./router.js";

export function showLogin() {
  state.me = null;
  if (state.socket) { state.socket.onclose = null; state.socket.close(); state.socket = null; }
  $("app-view").classList.add("d-none");
  $("login-view").classList.remove("d-none");
  $("login-username").focus();
}
$("login-form").addEventListener("submit", async function (e) {
  e.preventDefault();
  $("login-error").classList.add("d-none");
  try {
    var data = await api("POST", "/api/auth/login", { username: $("login-username").value, password: $("login-password").value });
    $("login-password").value = "";
    signedIn(data);
  } catch (err) {
    $("login-error").textContent = err.status === 429 ? "Too many attempts; wait a moment." : "Wrong username or password.";
    $("login-error").classList.remove("d-none");
  }
});
$("logout").addEventListener("click", async function () {
  try { await api("POST", "/api/auth/logout"); } catch (e) { /* signed out anyway */ }
  showLogin();
});
export function signedIn(data) {
  state.me = data.user;
  state.csrf = data.csrf_token;
  $("whoami").textContent = data.user.username + " (" + data.user.role + ")";
  $("login-view").classList.add("d-none");
  $("app-view").classList.remove("d-none");
  applyRoles();
  connectSocket();
  route();
}
