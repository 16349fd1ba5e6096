/* Chat text with its web links made clickable, for the widget and the
 * dashboard alike: `chathubLinkify(text)` returns a DocumentFragment of text
 * nodes and <a> elements, built node by node (never innerHTML). Only http and
 * https URLs become links; `javascript:`, `data:` and every other scheme stay
 * plain text. A link opens in a new tab with no referrer and no opener. */
(function () {
  var URL_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  // Punctuation that ends a sentence rather than the link.
  var TRAILING = /[.,;:!?)\]}]+$/;
  window.chathubLinkify = function (text) {
    var fragment = document.createDocumentFragment();
    var last = 0;
    String(text).replace(URL_PATTERN, function (match, offset) {
      var url = match.replace(TRAILING, "");
      var parsed = null;
      try { parsed = new URL(url); } catch (e) { parsed = null; }
      if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) return match;
      fragment.appendChild(document.createTextNode(text.slice(last, offset)));
      var a = document.createElement("a");
      a.href = parsed.href;
      a.textContent = url;
      a.target = "_blank";
      a.rel = "noopener noreferrer nofollow";
      fragment.appendChild(a);
      last = offset + url.length;
      return match;
    });
    fragment.appendChild(document.createTextNode(String(text).slice(last)));
    return fragment;
  };
})();
