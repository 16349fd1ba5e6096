/* The dashboard socket (docs/protocol.md): live session summaries for the
 * list, and the transcript, typing and takeover of the watched session.
 * Reconnects with backoff; 4401 means signed out. */
import { $, hooks, state, toast } from "./core.js";
import { onSessionFrame, removeRows } from "./sessions.js";
import { onSummary } from "./alerts.js";
import { appendMessage, onTakeover, onVisitorRead, reportRead, showDelivery, showTyping } from "./session.js";
import { onEmail } from "./emails.js";
import { onAiAlert, showHealth } from "./aihealth.js";
import { onReplayFrame } from "./replays.js";
import { onCallFrame, onCallRefused, onSignalFrame } from "./call.js";
import { onStatsFrame, subscribeStats } from "./stats.js";

export function connectSocket() {
  var proto = location.protocol === "https:" ? "wss:" : "ws:";
  var socket = new WebSocket(proto + "//" + location.host + "/ws/dashboard");
  state.socket = socket;
  socket.onopen = function () {
    state.reconnect = 0;
    $("live").classList.add("on");
    subscribeStats();
    if (state.watching) { socket.send(JSON.stringify({ type: "watch", session_id: state.watching, last_seq: state.lastSeq })); setTimeout(reportRead, 0); }
  };
  socket.onmessage = function (event) {
    var frame = JSON.parse(event.data);
    if (frame.type === "session") { onSummary(frame.session); onSessionFrame(frame.session); }
    else if (frame.type === "session_deleted") removeRows([frame.session_id], false);
    else if (frame.type === "message" && frame.session_id === state.watching) appendMessage(frame.message);
    else if (frame.type === "email" && frame.session_id === state.watching) onEmail(frame.email);
    else if (frame.type === "read" && frame.session_id === state.watching && frame.by === "visitor") onVisitorRead(frame.seq);
    else if (frame.type === "delivery" && frame.session_id === state.watching) showDelivery(frame.seq, frame.status);
    else if (frame.type === "typing" && frame.session_id === state.watching) showTyping(frame.role, frame.on);
    else if (frame.type === "takeover") onTakeover(frame.session_id, frame.handler);
    else if (frame.type === "stats") onStatsFrame(frame);
    else if (frame.type === "ai_health") showHealth(frame.health);
    else if (frame.type === "ai_alert") onAiAlert(frame);
    else if (frame.type === "replay") onReplayFrame(frame);
    else if (frame.type === "call") onCallFrame(frame);
    else if (frame.type === "signal") onSignalFrame(frame);
    else if (frame.type === "error" && frame.code === "call_refused" && onCallRefused(frame.message)) { /* shown by the call */ }
    else if (frame.type === "error") toast(frame.message, "danger");
  };
  socket.onclose = function (event) {
    $("live").classList.remove("on");
    if (event.code === 4401 || !state.me) { if (event.code === 4401) hooks.signedOut(); return; }
    state.reconnect += 1;
    setTimeout(connectSocket, Math.min(15000, 500 * Math.pow(2, state.reconnect)));
  };
}
