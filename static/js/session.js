/* One session: transcript (live while watched), customer panel, emails (emails.js), QA,
 * developer feedback, takeover, staff replies, archive, delete, export. */
import { $, BADGE, api, applyRoles, confirmAction, customerName, downloadJson, el, state, toast, when } from "./core.js";
import { showNotes } from "./notes.js";
import { showEmails } from "./emails.js";
import { renderWorkflow } from "./workflow.js";
import "./canned.js";
import { clearFiles, fileNodes, takeReadyFiles } from "./files.js";
import { leaveSession } from "./call.js";

var ROLE_LABEL = { visitor: "Visitor", ai: "AI", agent: "Staff", system: "System" };
export async function openSession(id) {
  var data;
  try { data = await api("GET", "/api/sessions/" + id); } catch (err) { toast(err.message, "danger"); return; }
  $("transcript").replaceChildren();
  clearFiles();
  state.lastSeq = 0;
  data.messages.forEach(appendMessage);
  var after = data.next_after_seq;
  while (after) {
    var more = await api("GET", "/api/sessions/" + id + "?after_seq=" + after);
    more.messages.forEach(appendMessage);
    after = more.next_after_seq;
  }
  showNotes(data.notes);
  state.session = data.session;
  visitorRead = data.session.visitor_read_seq || 0;
  showSeen();
  // Messenger/WhatsApp: what the channel reported about each reply.
  (data.channel_receipts || []).forEach(function (r) { showDelivery(r.seq, r.status); });
  renderSessionPanels(data.session);
  renderCalls(data.calls || []);
  showEmails(data.emails, data.email_flag);
  renderHistory(data.qa_history);
  $("qa-notes").value = data.session.qa_notes || "";
  $("dev-feedback").value = data.session.dev_feedback || "";
  applyRoles($("view-session"));
  window.scrollTo({ top: 0, behavior: "instant" }); // a session opens at its top, wherever the list was scrolled
  state.watching = id;
  if (state.socket && state.socket.readyState === 1) {
    state.socket.send(JSON.stringify({ type: "watch", session_id: id, last_seq: state.lastSeq }));
  }
  reportRead();
}
// Read receipts (docs/protocol.md): while a transcript is on screen its
// newest message is reported read (the visitor's widget shows "Seen"); the
// visitor's reads show as "Seen" under the newest staff or AI message.
var readSent = {}, visitorRead = 0;
export function reportRead() {
  var id = state.watching;
  if (!id || document.visibilityState !== "visible" || !state.socket || state.socket.readyState !== 1) return;
  if (state.lastSeq <= (readSent[id] || 0)) return;
  readSent[id] = state.lastSeq;
  state.socket.send(JSON.stringify({ type: "read", session_id: id, seq: state.lastSeq }));
}
document.addEventListener("visibilitychange", reportRead);
export function onVisitorRead(seq) {
  if (seq > visitorRead) { visitorRead = seq; showSeen(); }
}
function showSeen() {
  $("transcript").querySelectorAll(".seen").forEach(function (s) { s.remove(); });
  var ours = Array.from($("transcript").querySelectorAll("li.ai[data-seq], li.agent[data-seq]"))
    .filter(function (li) { return Number(li.getAttribute("data-seq")) <= visitorRead; });
  var last = ours[ours.length - 1];
  if (last) last.appendChild(el("span", { class: "seen", text: "Seen" }));
}
/** What Messenger/WhatsApp reported about our reply `seq` (live or on open). */
export function showDelivery(seq, status) {
  var li = $("transcript").querySelector('li[data-seq="' + seq + '"]');
  if (!li || status === "sent" || !state.session) return;
  var label = li.querySelector(".delivery") || li.appendChild(el("span", { class: "delivery" }));
  label.setAttribute("data-delivery", status);
  label.textContent = status[0].toUpperCase() + status.slice(1) + " on " + state.session.channel;
}
export function unwatch() {
  leaveSession();
  if (state.socket && state.socket.readyState === 1) state.socket.send(JSON.stringify({ type: "unwatch", session_id: state.watching }));
  state.watching = null;
}
export function appendMessage(m) {
  if (m.seq <= state.lastSeq) return;
  state.lastSeq = m.seq;
  var li = el("li", { class: m.role, "data-seq": m.seq, "data-time": m.created_at },
    el("span", { class: "meta", text: (ROLE_LABEL[m.role] || m.role) + (m.author ? " " + m.author : "") + " · " + new Date(m.created_at).toLocaleTimeString() }),
    m.text ? window.chathubLinkify(m.text) : null);
  fileNodes(m.attachments).forEach(function (node) { li.appendChild(node); });
  $("transcript").appendChild(li);
  $("transcript").scrollTop = $("transcript").scrollHeight;
  if (state.watching) reportRead();
  // Whoever was typing has said it.
  if (m.role === typingRole || (typingRole !== "visitor" && m.role !== "visitor")) $("s-typing").hidden = true;
}
var typingRole = null;
export function showTyping(role, on) {
  typingRole = on ? role : null;
  $("s-typing-who").textContent = (ROLE_LABEL[role] || role) + " is typing…";
  $("s-typing").hidden = !on;
}
// While staff type a reply the visitor sees "Team is typing" (off after 2 s
// without a key, or when the reply is sent).
var typingOff = null;
function staffTyping(on) {
  if (state.socket && state.socket.readyState === 1 && state.watching) {
    state.socket.send(JSON.stringify({ type: "typing", session_id: state.watching, on: on }));
  }
}
$("s-reply-text").addEventListener("input", function () {
  if (!typingOff) staffTyping(true);
  clearTimeout(typingOff);
  typingOff = setTimeout(function () { typingOff = null; staffTyping(false); }, 2000);
});
function stopTyping() {
  if (typingOff) { clearTimeout(typingOff); typingOff = null; staffTyping(false); }
}
export function renderSessionPanels(s) {
  if (s.id === state.watching) state.session = s;
  renderWorkflow(s);
  if (!state.shown[s.id] || state.shown[s.id] < s.updated_at) state.shown[s.id] = s.updated_at;
  $("s-title").textContent = customerName(s);
  var c = $("s-completion"); c.className = "badge text-bg-" + (BADGE[s.completion] || "secondary"); c.textContent = s.completion.replace("_", " ");
  $("s-status").textContent = s.status;
  $("s-archive").textContent = s.status === "archived" ? "Unarchive" : "Archive";
  if (takeoverAsked !== s.id) $("s-takeover").checked = s.handler === "human";
  $("s-call").classList.toggle("d-none", s.channel !== "web" && s.channel !== "test"); // calls are for web chats
  var rows = [["Name", s.customer.name], ["Email", s.customer.email], ["Phone", s.customer.phone], ["Channel", s.channel],
    ["Site", s.site], ["Completion rule", s.completion_rule], ["Completed", s.completed_at ? when(s.completed_at) : null],
    ["Handler", s.handler], ["Priority", s.priority], ["Assignee", s.assignee], ["Started", when(s.created_at)],
    ["Rating", s.csat_score ? s.csat_score + " / 5" + (s.csat_comment ? " — " + s.csat_comment : "") : null]];
  $("s-customer").replaceChildren.apply($("s-customer"), rows.reduce(function (acc, r) {
    acc.push(el("dt", { class: "col-5", text: r[0] }), el("dd", { class: "col-7 mb-1", text: r[1] || "—" }));
    return acc;
  }, []));
  document.querySelectorAll("#qa-buttons [data-qa]").forEach(function (b) {
    var status = b.getAttribute("data-qa"), current = status === s.qa_status;
    b.classList.toggle("active", current);
    b.setAttribute("aria-pressed", String(current));
    // Only the moves QA can make: not to where it is, and "fixed" only from an issue.
    b.disabled = current || (status === "fixed" && s.qa_status !== "issue");
  });
  $("dev-by").textContent = s.dev_feedback_by ? "by " + s.dev_feedback_by + ", " + when(s.dev_feedback_at) : "";
}
function renderCalls(calls) {
  $("s-calls").replaceChildren.apply($("s-calls"), calls.map(function (c) {
    var length = c.duration_secs >= 60 ? Math.floor(c.duration_secs / 60) + " min " + (c.duration_secs % 60) + " s" : c.duration_secs + " s";
    return el("li", { "data-call": c.status }, when(c.created_at) + ": " + c.status + (c.status === "ended" ? ", " + length : "") + " (" + c.started_by_name + ")");
  }));
  $("s-calls-card").hidden = !calls.length;
}
function renderHistory(history) {
  $("qa-history").replaceChildren.apply($("qa-history"), (history || []).map(function (h) {
    return el("li", {}, h.from_status + " → " + h.to_status + " by " + h.by + ", " + when(h.at), h.notes ? el("div", { class: "text-body-secondary", text: h.notes }) : null);
  }));
}
document.querySelectorAll("#qa-buttons [data-qa]").forEach(function (button) {
  button.addEventListener("click", async function () {
    try {
      var s = await api("PUT", "/api/sessions/" + state.watching + "/qa", { qa_status: button.getAttribute("data-qa"), qa_notes: $("qa-notes").value });
      renderSessionPanels(s);
      var detail = await api("GET", "/api/sessions/" + state.watching + "?after_seq=" + state.lastSeq);
      renderHistory(detail.qa_history);
      toast("QA status: " + s.qa_status, "success");
    } catch (err) { toast(err.message, "danger"); }
  });
});
$("qa-save-notes").addEventListener("click", async function () {
  try {
    var s = await api("PUT", "/api/sessions/" + state.watching + "/qa", { qa_notes: $("qa-notes").value });
    renderSessionPanels(s); toast("Notes saved", "success");
  } catch (err) { toast(err.message, "danger"); }
});
$("dev-save").addEventListener("click", async function () {
  try {
    var s = await api("PUT", "/api/sessions/" + state.watching + "/dev-feedback", { dev_feedback: $("dev-feedback").value });
    renderSessionPanels(s); toast("Feedback saved", "success");
  } catch (err) { toast(err.message, "danger"); }
});
// The session a takeover was asked for and not yet answered: a summary sent
// before the server saw it (a read receipt's, say) would flip the switch
// back under the user's click, so until the `takeover` frame answers (or a
// few seconds pass) summaries leave the switch alone.
var takeoverAsked = null;
export function onTakeover(sessionId, handler) {
  if (sessionId !== state.watching) return;
  takeoverAsked = null;
  $("s-takeover").checked = handler === "human";
}
$("s-takeover").addEventListener("change", function () {
  var asked = takeoverAsked = state.watching;
  setTimeout(function () { if (takeoverAsked === asked) takeoverAsked = null; }, 5000);
  state.socket.send(JSON.stringify({ type: "takeover", session_id: state.watching, on: $("s-takeover").checked }));
});
$("s-reply").addEventListener("submit", function (e) {
  e.preventDefault();
  var text = $("s-reply-text").value.trim();
  var files = takeReadyFiles();
  if (!text && !files.length) return;
  var id = "staff-" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  stopTyping();
  state.socket.send(JSON.stringify({ type: "say", session_id: state.watching, client_msg_id: id, text: text, attachments: files }));
  $("s-reply-text").value = "";
});
$("s-reply-text").addEventListener("keydown", function (e) {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("s-reply").requestSubmit(); }
});
$("s-archive").addEventListener("click", async function () {
  var archived = $("s-archive").textContent === "Unarchive";
  try {
    var s = await api("PUT", "/api/sessions/" + state.watching, { status: archived ? "active" : "archived" });
    renderSessionPanels(s);
  } catch (err) { toast(err.message, "danger"); }
});
$("s-delete").addEventListener("click", async function () {
  if (!(await confirmAction("Delete this session?", "The session and its transcript are deleted for good."))) return;
  var id = state.watching;
  try { await api("DELETE", "/api/sessions/" + id); unwatch(); location.hash = "#/sessions"; toast("Deleted", "success"); }
  catch (err) { toast(err.message, "danger"); }
});
$("s-export").addEventListener("click", function () {
  // One conversation: the export filtered down to it by its customer search is
  // not exact, so use the detail JSON instead.
  api("GET", "/api/sessions/" + state.watching).then(function (data) { downloadJson("session-" + state.watching + ".json", data); });
});
