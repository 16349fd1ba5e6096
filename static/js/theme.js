/* Light and dark theme, remembered in localStorage. */
import { $, el, state } from "./core.js";

export function setTheme(theme) {
  document.documentElement.setAttribute("data-bs-theme", theme);
  localStorage.setItem("chathub-theme", theme);
  $("theme-toggle").replaceChildren(el("i", { class: theme === "dark" ? "fa-solid fa-sun" : "fa-solid fa-moon" }));
  Object.values(state.charts).forEach(function (c) { c.update(); });
  var testAi = document.getElementById("test-ai-frame");
  if (testAi && testAi.contentWindow) testAi.contentWindow.postMessage({ type: "chathub:theme", theme: theme }, location.origin);
}
$("theme-toggle").addEventListener("click", function () {
  setTheme(document.documentElement.getAttribute("data-bs-theme") === "dark" ? "light" : "dark");
});
setTheme(localStorage.getItem("chathub-theme") || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
