/* Signing in and out. */
import { $, api, applyRoles, state, toast } from "./core.js";
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
function showWhoami() {
  var me = state.me;
  $("whoami").textContent = me.display_name + (me.display_name !== me.username ? " · " + me.username : "") + " (" + me.role + ")";
}
// Anyone on staff names themselves: visitors see it on their messages.
$("whoami").addEventListener("click", async function () {
  var name = prompt("Your name as visitors see it on your messages (empty: your username)", state.me.display_name);
  if (name === null) return;
  try { state.me = (await api("PUT", "/api/auth/me", { display_name: name })).user; showWhoami(); toast("Name saved", "success"); }
  catch (err) { toast(err.message, "danger"); }
});
export function signedIn(data) {
  state.me = data.user;
  state.csrf = data.csrf_token;
  showWhoami();
  $("login-view").classList.add("d-none");
  $("app-view").classList.remove("d-none");
  applyRoles();
  connectSocket();
  route();
}
