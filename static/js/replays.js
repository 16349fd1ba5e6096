/* Replays (SPEC §16): started from the sessions list (selected rows or the
 * current filter) or a session; listed with who ran them; one replay shows
 * every turn side by side, the original answer and today's, with the words
 * that changed marked. Progress arrives over the dashboard socket. */
import { $, api, downloadJson, el, state, toast, when } from "./core.js";
import { currentFilters } from "./hash.js";

/** Starts a replay of `ids` and opens it. */
export async function startReplay(ids) {
  if (!ids.length) { toast("Select the sessions to replay first", "warning"); return; }
  try {
    var started = await api("POST", "/api/replays", { session_ids: ids });
    toast("Replay started (" + ids.length + " session" + (ids.length === 1 ? "" : "s") + ")", "success");
    location.hash = "#/replays/" + started.replay.id;
  } catch (err) { toast(err.message, "danger"); }
}

var shown = null; // the replay open in the detail
var loads = 0;    // each load numbered: a slower, older one is dropped
export async function loadReplays(id) {
  shown = id || null;
  var load = ++loads;
  var list = await api("GET", "/api/replays");
  if (load !== loads) return;
  $("replays-body").replaceChildren.apply($("replays-body"), list.replays.map(function (r) {
    return el("tr", { "data-replay": r.id }, el("td", { text: when(r.created_at) }), el("td", { text: r.created_by }), el("td", { text: r.note || "" }),
      el("td", { text: r.session_ids.length }), el("td", { text: r.status }), el("td", { text: r.summary.same }), el("td", { text: r.summary.changed }),
      el("td", { text: r.summary.failed }), el("td", {}, el("a", { href: "#/replays/" + r.id, text: "Open" })));
  }));
  $("replay-detail").hidden = !id;
  if (!id) return;
  var replay = (await api("GET", "/api/replays/" + id)).replay;
  if (load === loads) showReplay(replay);
}
/** A replay moved on: refresh what shows it. */
export function onReplayFrame(frame) {
  if (!document.getElementById("view-replays").classList.contains("d-none")) loadReplays(shown).catch(function () {});
}

// Word-level differences (a longest common subsequence over words): the
// original's removed words and the replay's added ones are marked.
function diffWords(a, b) {
  var x = a.split(/(\s+)/), y = b.split(/(\s+)/);
  var n = x.length, m = y.length, table = [];
  for (var i = 0; i <= n; i++) table.push(new Array(m + 1).fill(0));
  for (i = n - 1; i >= 0; i--) for (var j = m - 1; j >= 0; j--) table[i][j] = x[i] === y[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
  var left = [], right = [];
  i = 0; j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { left.push(x[i]); right.push(y[j]); i++; j++; }
    else if (table[i + 1][j] >= table[i][j + 1]) left.push(el("del", { text: x[i++] }));
    else right.push(el("ins", { text: y[j++] }));
  }
  while (i < n) left.push(el("del", { text: x[i++] }));
  while (j < m) right.push(el("ins", { text: y[j++] }));
  return [left, right];
}
function side(label, parts, cls) {
  var cell = el("div", { class: "col-md-6" }, el("div", { class: "small text-body-secondary", text: label }));
  var body = el("div", { class: "replay-text " + cls });
  parts.forEach(function (p) { body.appendChild(typeof p === "string" ? document.createTextNode(p) : p); });
  cell.appendChild(body);
  return cell;
}
function showReplay(r) {
  $("replay-title").textContent = "Replay of " + when(r.created_at) + " by " + r.created_by + " — " + r.status + ": " + r.summary.same + " same, " +
    r.summary.changed + " changed, " + r.summary.failed + " failed of " + r.summary.turns;
  $("replay-sessions").replaceChildren.apply($("replay-sessions"), r.sessions.map(function (s) {
    var card = el("div", { class: "card card-body mb-2", "data-session": s.session_id },
      el("a", { href: "#/sessions/" + s.session_id, class: "small", text: "Session " + s.session_id }));
    s.turns.forEach(function (t) {
      var original = t.original || "", replayed = t.replayed === null ? "" : t.replayed;
      var parts = t.same ? [[original], [replayed]] : diffWords(original, replayed);
      var badge = t.error ? el("span", { class: "badge text-bg-danger", text: "failed" }) : t.same ? el("span", { class: "badge text-bg-success", text: "same" })
        : el("span", { class: "badge text-bg-warning", text: "changed" });
      card.appendChild(el("div", { class: "replay-turn border-top pt-2 mt-2", "data-same": String(t.same) },
        el("div", { class: "small" }, badge, " ", el("strong", { text: "Visitor: " }), t.visitor),
        el("div", { class: "row g-2 mt-1" }, side("Original", t.original === null ? ["(no AI answer)"] : parts[0], "original"),
          side("Today's agent", t.error ? ["Failed: " + t.error] : parts[1], "replayed"))));
    });
    return card;
  }));
  $("replay-export").onclick = function () { downloadJson("replay-" + r.id + ".json", r); };
}

$("bulk-replay").addEventListener("click", function () { startReplay(Array.from(state.selected)); });
$("s-replay").addEventListener("click", function () { if (state.watching) startReplay([state.watching]); });
$("replay-filtered").addEventListener("click", async function () {
  var q = currentFilters(); q.set("per_page", "100");
  try {
    var page = await api("GET", "/api/sessions?" + q);
    if (!page.sessions.length) { toast("No sessions match the filter", "warning"); return; }
    startReplay(page.sessions.map(function (s) { return s.id; }));
  } catch (err) { toast(err.message, "danger"); }
});
