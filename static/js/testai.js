/* "Test AI": the widget's chat frame in a draggable window. */
import { $ } from "./core.js";

$("test-ai-open").addEventListener("click", function () {
  var frame = $("test-ai-frame");
  if (!frame.src) frame.src = "/widget/frame.html?site=default&channel=test";
  $("test-ai").classList.remove("d-none");
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
