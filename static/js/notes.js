/* Private notes in the session view: staff only, never sent to the visitor.
 * They sit in the transcript by time, in a colour of their own. */
import { $, api, el, state, toast } from "./core.js";

function noteItem(n) {
  return el("li", { class: "note", "data-time": n.created_at, "data-note": n.id },
    el("span", { class: "meta", text: "Private note · " + (n.author || "former user") + " · " + new Date(n.created_at).toLocaleTimeString() }),
    n.text);
}
/** Puts an item into the transcript before the first one that is later. */
function placeByTime(li) {
  var time = li.getAttribute("data-time");
  var later = Array.from($("transcript").children).find(function (c) { return c.getAttribute("data-time") > time; });
  $("transcript").insertBefore(li, later || null);
}
export function showNotes(notes) {
  (notes || []).forEach(function (n) { placeByTime(noteItem(n)); });
}
$("s-note").addEventListener("submit", async function (e) {
  e.preventDefault();
  var text = $("s-note-text").value.trim();
  if (!text) return;
  try {
    var note = await api("POST", "/api/sessions/" + state.watching + "/notes", { text: text });
    placeByTime(noteItem(note));
    $("s-note-text").value = "";
  } catch (err) { toast(err.message, "danger"); }
});
