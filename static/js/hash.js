/* The location hash (#/path?query) and the list's filter form. */
import { $ } from "./core.js";

export function parseHash() {
  var hash = location.hash.replace(/^#/, "") || "/sessions";
  var parts = hash.split("?");
  return { path: parts[0], query: new URLSearchParams(parts[1] || "") };
}
export var FILTERS = ["from", "to", "channel", "completion", "qa_status", "csat", "status", "q"];
export function currentFilters() {
  var q = new URLSearchParams();
  FILTERS.forEach(function (name) { var v = $("filters").elements[name].value; if (v) q.set(name, v); });
  return q;
}
