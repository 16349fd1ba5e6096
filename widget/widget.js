/*! chathub widget loader. Include on any page:
 *  <script src="https://HOST/widget.js" data-site="KEY" async></script>
 * Adds a chat bubble (in a closed Shadow DOM, so the page's CSS cannot touch
 * it) that opens the chat in an iframe served by the hub (so the chat's CSS
 * and script cannot touch the page). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__chathubLoaded) return;
  window.__chathubLoaded = true;
  var hub = new URL(script.src).origin;
  var site = script.getAttribute("data-site") || "default";

  // A custom element the page's own rules are unlikely to target, reset to
  // initial values through the CSSOM (allowed under a strict CSP).
  var host = document.createElement("chathub-widget");
  host.setAttribute("data-chathub", "");
  host.style.setProperty("all", "initial", "important");
  host.style.setProperty("position", "fixed", "important");
  host.style.setProperty("width", "0", "important");
  host.style.setProperty("height", "0", "important");
  var root = host.attachShadow({ mode: "closed" });
  // A constructable stylesheet, not a <style> element: host pages with a
  // strict Content-Security-Policy (no inline styles) still show the bubble.
  var sheet = new CSSStyleSheet();
  sheet.replaceSync(
    ":host{all:initial}" +
    ".bubble{position:fixed;bottom:20px;right:20px;z-index:2147483646;width:56px;height:56px;border-radius:50%;border:0;" +
    "background:#0d6efd;color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);font:600 24px/56px system-ui,sans-serif}" +
    ".bubble:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}" +
    ".left{left:20px;right:auto}" +
    "iframe{position:fixed;bottom:88px;right:20px;z-index:2147483647;width:370px;height:560px;max-height:calc(100vh - 110px);" +
    "max-width:calc(100vw - 24px);border:0;border-radius:14px;box-shadow:0 8px 30px rgba(0,0,0,.3);background:#fff;display:none}" +
    "iframe.open{display:block}" +
    "@media (max-width:480px){iframe{inset:0;width:100vw;height:100vh;max-height:none;max-width:none;border-radius:0}}");
  root.adoptedStyleSheets = [sheet];
  var bubble = document.createElement("button");
  bubble.className = "bubble";
  bubble.type = "button";
  bubble.setAttribute("aria-label", "Open chat");
  bubble.setAttribute("aria-expanded", "false");
  // Inline SVG icons: they render in a shadow root on any page, with no
  // icon font or emoji font to load.
  var SVG = "http://www.w3.org/2000/svg";
  var ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
    close: "M6 6l12 12M18 6L6 18"
  };
  function icon(name) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24"); svg.setAttribute("width", "26"); svg.setAttribute("height", "26");
    svg.setAttribute("aria-hidden", "true"); svg.setAttribute("data-icon", name);
    var path = document.createElementNS(SVG, "path");
    path.setAttribute("d", ICONS[name]);
    if (name === "close") { path.setAttribute("stroke", "currentColor"); path.setAttribute("stroke-width", "2.5"); path.setAttribute("fill", "none"); path.setAttribute("stroke-linecap", "round"); }
    else path.setAttribute("fill", "currentColor");
    svg.appendChild(path);
    return svg;
  }
  bubble.replaceChildren(icon("chat"));
  var frame = document.createElement("iframe");
  frame.title = "Chat";
  // Video calls run inside the frame (SPEC §14).
  frame.allow = "camera; microphone";
  frame.src = hub + "/widget/frame.html?site=" + encodeURIComponent(site);
  root.appendChild(frame);
  root.appendChild(bubble);

  // Open or closed as the visitor left it, across reloads of this tab.
  var OPEN_KEY = "chathub.open." + site;
  function remember(open) {
    try { sessionStorage.setItem(OPEN_KEY, open ? "1" : "0"); } catch (e) { /* storage off: forget */ }
  }
  function toggle(open, byKeyboardOrClick) {
    frame.classList.toggle("open", open);
    if (byKeyboardOrClick !== false) remember(open);
    bubble.setAttribute("aria-expanded", String(open));
    bubble.setAttribute("aria-label", open ? "Close chat" : "Open chat");
    bubble.replaceChildren(icon(open ? "close" : "chat"));
    // Opened by the visitor: focus goes into the chat (the frame then puts
    // it in the message box); a restore after a reload leaves focus alone.
    if (open && byKeyboardOrClick !== false) frame.focus();
    if (open && frame.contentWindow) frame.contentWindow.postMessage({ type: "chathub:opened", focus: byKeyboardOrClick !== false }, hub);
  }
  bubble.addEventListener("click", function () { toggle(!frame.classList.contains("open")); });
  frame.addEventListener("load", function () {
    var wasOpen = false;
    try { wasOpen = sessionStorage.getItem(OPEN_KEY) === "1"; } catch (e) { /* storage off */ }
    if (wasOpen) toggle(true, false);
  });
  window.addEventListener("message", function (event) {
    if (event.origin !== hub || !event.data || typeof event.data !== "object") return;
    if (event.data.type === "chathub:close") { toggle(false); bubble.focus(); }
    if (event.data.type === "chathub:settings") {
      var color = String(event.data.color || "");
      if (/^#[0-9a-fA-F]{3,8}$/.test(color)) bubble.style.background = color;
      var left = event.data.position === "left";
      bubble.classList.toggle("left", left);
      frame.style.left = left ? "20px" : "";
      frame.style.right = left ? "auto" : "";
    }
  });
  (document.body || document.documentElement).appendChild(host);
})();
