/* "Test AI": the widget's chat frame in a draggable window, in the
 * dashboard's theme, with a button that starts a new conversation. */
import { $ } from "./core.js";

/** Where the frame keeps its conversation (see widget/frame.js). */
var STORE_KEY = "chathub:default:test";
function frameUrl() {
  return "/widget/frame.html?site=default&channel=test&theme=" + (document.documentElement.getAttribute("data-bs-theme") || "light");
}
$("test-ai-open").addEventListener("click", function () {
  var frame = $("test-ai-frame");
  if (!frame.src) frame.src = frameUrl();
  $("test-ai").classList.remove("d-none");
});
$("test-ai-new").addEventListener("click", function () {
  localStorage.removeItem(STORE_KEY);
  $("test-ai-frame").src = frameUrl();
});
$("test-ai-close").addEventListener("click", function () { $("test-ai").classList.add("d-none"); });
window.addEventListener("message", function (e) {
  if (e.origin === location.origin && e.data && e.data.type === "chathub:close") $("test-ai").classList.add("d-none");
});
(function draggable() {
  var panel = $("test-ai"), head = $("test-ai-head"), start = null;
  head.addEventListener("pointerdown", function (e) {
    if (e.target.tagName === "BUTTON") return;
    var rect = panel.getBoundingClientRect();
    start = { x: e.clientX - rect.left, y: e.clientY - rect.top };
    head.setPointerCapture(e.pointerId);
  });
  head.addEventListener("pointermove", function (e) {
    if (!start) return;
    panel.style.left = Math.max(0, Math.min(innerWidth - 80, e.clientX - start.x)) + "px";
    panel.style.top = Math.max(0, Math.min(innerHeight - 40, e.clientY - start.y)) + "px";
    panel.style.right = "auto"; panel.style.bottom = "auto";
  });
  head.addEventListener("pointerup", function () { start = null; });
})();
// On a phone the opened menu comes first: Test AI closes rather than cover it.
$("nav").addEventListener("show.bs.collapse", function () { $("test-ai").classList.add("d-none"); });
