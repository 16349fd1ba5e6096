/* Alerts for the staff who may act (admin, developer, agent): a new
 * escalation, and a visitor message in a conversation assigned to me. Each
 * adds one to the count in the tab title until the alerted screen is seen
 * (Escalations, or that conversation); with the sound on (a toggle: browsers
 * play sound only after a click) a short tone plays, and after the user
 * allowed it a desktop notification shows. */
import { $, state } from "./core.js";

var HANDLERS = ["admin", "developer", "agent"];
var TITLE = document.title;
var pending = new Map(); // alert key -> the hash that clears it
var seen = {};           // session id -> {status, count} as last shown
var sound = localStorage.getItem("chathub.alertSound") === "on";
var audio = null;

function renderTitle() {
  document.title = pending.size ? "(" + pending.size + ") " + TITLE : TITLE;
}
function tone() {
  if (!sound) return;
  try {
    audio = audio || new AudioContext();
    var osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = 880; gain.gain.value = 0.08;
    osc.connect(gain); gain.connect(audio.destination);
    osc.start(); osc.stop(audio.currentTime + 0.15);
  } catch (e) { /* no audio: the title still counts */ }
}
function raise(key, clearedBy, title, body) {
  if (pending.has(key)) return;
  pending.set(key, clearedBy);
  renderTitle();
  tone();
  if (window.Notification && Notification.permission === "granted" && document.visibilityState !== "visible") {
    try { new Notification(title, { body: body, tag: key }); } catch (e) { /* not allowed here */ }
  }
}
/** A screen was shown: the alerts it answers are cleared. */
export function screenShown(hash) {
  pending.forEach(function (clearedBy, key) { if (hash === clearedBy) pending.delete(key); });
  renderTitle();
}
/** Every session summary the socket delivers. */
export function onSummary(s) {
  var before = seen[s.id];
  seen[s.id] = { status: s.status, count: s.message_count };
  if (!state.me || HANDLERS.indexOf(state.me.role) < 0) return;
  var who = (s.customer && (s.customer.name || s.customer.email)) || "A visitor";
  if (s.status === "escalated" && (!before || before.status !== "escalated") && !s.assignee_id) {
    raise("escalation:" + s.id, "#/escalations", "New escalation", who + " asked for a person");
  }
  var newMessage = !before || s.message_count > before.count;
  if (s.assignee_id === state.me.id && s.last_message_role === "visitor" && newMessage && state.watching !== s.id) {
    raise("message:" + s.id + ":" + s.message_count, "#/sessions/" + s.id, "New message from " + who, s.last_message_preview || "");
  }
}
function renderSoundButton() {
  $("alert-sound").setAttribute("aria-pressed", String(sound));
  $("alert-sound").querySelector("i").className = "fa-solid " + (sound ? "fa-bell" : "fa-bell-slash");
}
$("alert-sound").addEventListener("click", function () {
  sound = !sound;
  localStorage.setItem("chathub.alertSound", sound ? "on" : "off");
  renderSoundButton();
  // Asked once, on a click (browsers allow the question only then).
  if (sound && window.Notification && Notification.permission === "default") Notification.requestPermission();
});
renderSoundButton();
