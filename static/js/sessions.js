/* The sessions list: filters, paging, export, live rows from the
 * dashboard socket, selection and bulk actions. */
import { $, api, badge, confirmAction, copyButton, customerName, el, embedSnippet, state, toast, when } from "./core.js";
import { FILTERS, currentFilters, parseHash } from "./hash.js";
import { loadStats } from "./stats.js";
import { loadHealth } from "./aihealth.js";
import { renderSessionPanels } from "./session.js";

$("filters").addEventListener("submit", function (e) {
  e.preventDefault();
  var q = currentFilters();
  location.hash = "#/sessions" + (q.toString() ? "?" + q : "");
});
$("filters-reset").addEventListener("click", function () { $("filters").reset(); location.hash = "#/sessions"; });
$("page-prev").addEventListener("click", function () { goPage(state.page - 1); });
$("page-next").addEventListener("click", function () { goPage(state.page + 1); });
function goPage(n) {
  var q = parseHash().query; q.set("page", String(n));
  location.hash = "#/sessions?" + q;
}
$("export").addEventListener("click", function () {
  var q = currentFilters();
  q.set("format", $("export-format").value);
  if ($("export-messages").checked) q.set("include", "messages");
  location.href = "/api/sessions/export?" + q;
});

// Each load is numbered: an answer that comes back after a newer load
// started (the filters changed meanwhile) is dropped, or a slow unfiltered
// page could replace the search results the user asked for since.
var loads = 0;
export async function loadSessions(query) {
  var load = ++loads;
  FILTERS.forEach(function (name) { $("filters").elements[name].value = query.get(name) || ""; });
  state.page = Math.max(1, parseInt(query.get("page") || "1", 10));
  var q = new URLSearchParams(query); q.set("page", String(state.page)); q.set("per_page", String(state.perPage));
  state.selected.clear(); updateBulkBar();
  try {
    var page = await api("GET", "/api/sessions?" + q);
    if (load !== loads) return;
    state.rows = page.sessions; state.total = page.total; state.totalEstimated = !!page.total_estimated;
    state.matches = {};
    (page.matches || []).forEach(function (m) { state.matches[m.session_id] = m; });
    renderRows();
  } catch (err) { toast("Could not load sessions: " + err.message, "danger"); }
  loadStats();
  loadHealth();
}
function rowFor(s) {
  var box = el("input", { class: "form-check-input", type: "checkbox", "aria-label": "Select " + customerName(s) });
  box.checked = state.selected.has(s.id);
  box.addEventListener("change", function () { if (box.checked) state.selected.add(s.id); else state.selected.delete(s.id); updateBulkBar(); });
  var unread = s.unread > 0;
  return el("tr", { "data-id": s.id, class: unread ? "unread" : null },
    el("td", {}, box),
    el("td", {}, el("a", { href: "#/sessions/" + s.id, text: customerName(s) }),
      unread ? el("span", { class: "badge rounded-pill text-bg-primary ms-1 unread-count", title: s.unread + " unread", text: s.unread }) : null,
      s.customer.email && s.customer.name ? el("div", { class: "small text-body-secondary", text: s.customer.email }) : null),
    el("td", { class: "col-wide" }, el("span", { class: "small", text: s.channel })),
    el("td", {}, preview(s)),
    el("td", { class: "col-wide" }, badge(s.completion)),
    el("td", { class: "col-wide" }, badge(s.qa_status)),
    el("td", {}, badge(s.status)),
    el("td", { class: "col-wide", text: s.message_count }),
    el("td", { class: "small col-wide", text: when(s.created_at) }));
}
/** What an empty dashboard shows: how to put the widget on a site. */
function gettingStarted() {
  var snippet = embedSnippet("default");
  return el("div", { class: "text-center" },
    el("p", { class: "fw-semibold mb-1", text: "No conversations yet." }),
    el("p", { class: "small text-body-secondary mb-2", text: "Put the chat widget on your website: paste this before </body> on every page (Settings → Sites has one per site)." }),
    el("div", { class: "d-inline-flex gap-2 align-items-center" }, el("code", { class: "user-select-all", id: "onboarding-snippet", text: snippet }), copyButton(snippet, "Copy snippet")),
    el("p", { class: "small mt-2 mb-0" }, el("a", { href: "/demo", target: "_blank", rel: "noopener", text: "Try it on the demo page" })));
}
/** The searched words of `q` (web-search syntax: quotes, `-word`, `or`). */
function searchedWords(q) {
  return (q || "").replace(/"/g, " ").split(/\s+/).filter(function (w) { return w && w[0] !== "-" && w.toLowerCase() !== "or"; });
}
/** The last message, or with a search the newest matching one with the
 * words marked (as DOM nodes: chat text is never HTML). */
function preview(s) {
  var match = state.matches && state.matches[s.id];
  var span = el("span", { class: "preview small" });
  if (!match) { span.textContent = s.last_message_preview || ""; return span; }
  var words = searchedWords(parseHash().query.get("q")).map(function (w) { return w.toLowerCase(); });
  var text = match.text, lower = text.toLowerCase();
  var hits = [];
  words.forEach(function (w) { for (var i = lower.indexOf(w); i >= 0; i = lower.indexOf(w, i + w.length)) hits.push([i, i + w.length]); });
  hits.sort(function (a, b) { return a[0] - b[0]; });
  // Start shortly before the first hit, so it shows in the cell.
  var at = hits.length ? Math.max(0, hits[0][0] - 30) : 0;
  if (at > 0) span.appendChild(document.createTextNode("…"));
  hits.forEach(function (h) {
    if (h[0] < at) return;
    span.appendChild(document.createTextNode(text.slice(at, h[0])));
    span.appendChild(el("mark", { text: text.slice(h[0], h[1]) }));
    at = h[1];
  });
  span.appendChild(document.createTextNode(text.slice(at)));
  span.setAttribute("title", "Message " + match.seq + " matches");
  return span;
}
function renderRows(flashId) {
  var body = $("sessions-body");
  body.replaceChildren.apply(body, state.rows.map(function (s) {
    var row = rowFor(s);
    if (s.id === flashId) row.classList.add("flash");
    return row;
  }));
  var filtered = Array.from(parseHash().query.keys()).some(function (k) { return k !== "page" && k !== "n"; });
  if (!state.rows.length && !filtered) body.appendChild(el("tr", {}, el("td", { colspan: "9", class: "py-4", id: "onboarding" }, gettingStarted())));
  else if (!state.rows.length) body.appendChild(el("tr", {}, el("td", { colspan: "9", class: "text-center text-body-secondary py-4", text: "No sessions match." })));
  var first = (state.page - 1) * state.perPage;
  $("page-info").textContent = state.total ? (first + 1) + "–" + (first + state.rows.length) + " of " + (state.totalEstimated ? "about " : "") + state.total.toLocaleString() : "0 sessions";
  $("page-prev").disabled = state.page <= 1;
  // An estimated total may be off either way: a full page means there may be more.
  $("page-next").disabled = state.totalEstimated ? state.rows.length < state.perPage : first + state.rows.length >= state.total;
  $("select-all").checked = false;
}
/** Does a summary pass the filters the page can check itself? The search
 * (`q`) it cannot: rows the server found are updated in place, and new
 * sessions wait for a reload. Dates are compared in the browser's time zone. */
function passesFilters(s) {
  var q = parseHash().query;
  if (!s.message_count) return false;
  if (q.get("channel") && q.get("channel") !== s.channel) return false;
  if (!q.get("channel") && s.channel === "test") return false; // Test AI chats only when asked for
  if (q.get("completion") && q.get("completion") !== s.completion) return false;
  if (q.get("qa_status") && q.get("qa_status") !== s.qa_status) return false;
  if (q.get("csat") && Number(q.get("csat")) !== s.csat_score) return false;
  var status = q.get("status");
  if (!status && s.status === "archived") return false;
  if (status && status !== "all" && status !== s.status) return false;
  var created = new Date(s.created_at), day = created.getFullYear() + "-" + String(created.getMonth() + 1).padStart(2, "0") + "-" + String(created.getDate()).padStart(2, "0");
  if (q.get("from") && day < q.get("from")) return false;
  if (q.get("to") && day > q.get("to")) return false;
  return true;
}
export function onSessionFrame(s) {
  // Summaries are coalesced and may be read just before a change we have
  // already shown: never go back to an older one.
  var known = state.shown[s.id];
  if (known && known > s.updated_at) return;
  state.shown[s.id] = s.updated_at;
  if (s.id === state.watching) renderSessionPanels(s);
  if ($("view-sessions").classList.contains("d-none")) return;
  var i = state.rows.findIndex(function (r) { return r.id === s.id; });
  var searching = !!parseHash().query.get("q");
  if (i >= 0 && !passesFilters(s)) { state.rows.splice(i, 1); state.total -= 1; }
  else if (i >= 0) state.rows[i] = s;
  else if (state.page === 1 && !searching && passesFilters(s)) { state.rows.unshift(s); state.total += 1; if (state.rows.length > state.perPage) state.rows.pop(); }
  else return;
  var sort = parseHash().query.get("sort");
  state.rows.sort(function (a, b) {
    var key = sort === "activity" ? function (x) { return x.last_message_at || x.created_at; } : function (x) { return x.created_at; };
    return key(b) < key(a) ? -1 : key(b) > key(a) ? 1 : 0;
  });
  renderRows(s.id);
}
$("select-all").addEventListener("change", function () {
  var on = $("select-all").checked;
  state.rows.forEach(function (s) { if (on) state.selected.add(s.id); else state.selected.delete(s.id); });
  $("sessions-body").querySelectorAll("input[type=checkbox]").forEach(function (b) { b.checked = on; });
  updateBulkBar();
});
function updateBulkBar() {
  $("bulk-bar").hidden = state.selected.size === 0;
  $("bulk-count").textContent = state.selected.size + " selected";
}
document.querySelectorAll("[data-bulk]").forEach(function (button) {
  button.addEventListener("click", async function () {
    var action = button.getAttribute("data-bulk");
    var ids = Array.from(state.selected);
    var ok = await confirmAction(action[0].toUpperCase() + action.slice(1) + " " + ids.length + " session(s)?",
      action === "delete" ? "The sessions and their transcripts are deleted for good." : "You can change this later.");
    if (!ok) return;
    try {
      await api("POST", "/api/sessions/bulk", { action: action, ids: ids });
      removeRows(ids, true);
      state.selected.clear(); updateBulkBar();
      toast(ids.length + " session(s): " + action + "d", "success");
      // Refill the page from the server once the rows have faded: the count
      // and the rows that move up from the next page.
      setTimeout(function () { loadSessions(parseHash().query); }, 450);
    } catch (err) { toast(err.message, "danger"); }
  });
});
export function removeRows(ids, fade) {
  ids.forEach(function (id) {
    var row = $("sessions-body").querySelector('tr[data-id="' + CSS.escape(id) + '"]');
    var i = state.rows.findIndex(function (r) { return r.id === id; });
    if (i >= 0) { state.rows.splice(i, 1); state.total -= 1; }
    if (row) { if (fade) { row.classList.add("leaving"); setTimeout(function () { row.remove(); }, 400); } else row.remove(); }
  });
  if (state.watching && ids.indexOf(state.watching) >= 0) { toast("This session was deleted", "warning"); location.hash = "#/sessions"; }
}
