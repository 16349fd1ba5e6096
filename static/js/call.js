/* A video call with the visitor from the session view (SPEC §14): the
 * dashboard rings the widget over the dashboard socket, then relays WebRTC
 * signaling through chathub; media flows browser to browser. Local and
 * remote video, mute, camera off, hang up and the running time; getStats()
 * goes with the hangup as the call's quality. */
import { $, api, state, toast } from "./core.js";

var call = null; // { id, session, pc, local, started, timer, pending }

function send(frame) {
  if (state.socket && state.socket.readyState === 1) state.socket.send(JSON.stringify(frame));
}
function setStatus(text) { $("call-status").textContent = text; }
function show(on) { $("call-panel").hidden = !on; }

export async function startCall() {
  if (call) return;
  var session = state.watching;
  var local;
  try { local = await navigator.mediaDevices.getUserMedia({ video: true, audio: true }); }
  catch (e) { toast("No camera or microphone: " + e.message, "danger"); return; }
  var ice = await api("GET", "/api/calls/ice-servers").catch(function () { return { ice_servers: [] }; });
  call = { id: null, session: session, local: local, ice: ice.ice_servers, pc: null, started: null, timer: null, pending: [] };
  $("call-local").srcObject = local;
  $("call-panel").setAttribute("data-state", "ringing");
  setStatus("Ringing…");
  show(true);
  send({ type: "call", session_id: session, action: "start" });
}

function connect() {
  var pc = new RTCPeerConnection({ iceServers: call.ice });
  call.pc = pc;
  call.local.getTracks().forEach(function (t) { pc.addTrack(t, call.local); });
  pc.onicecandidate = function (e) { if (e.candidate) send({ type: "signal", session_id: call.session, call_id: call.id, data: { candidate: e.candidate.toJSON() } }); };
  pc.ontrack = function (e) { $("call-remote").srcObject = e.streams[0]; };
  pc.onconnectionstatechange = function () {
    $("call-panel").setAttribute("data-state", pc.connectionState);
    if (pc.connectionState === "connected" && !call.started) {
      call.started = Date.now();
      call.timer = setInterval(function () {
        var s = Math.floor((Date.now() - call.started) / 1000);
        setStatus("In call " + Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"));
      }, 1000);
      setStatus("In call 0:00");
    }
  };
  return pc;
}
async function offer(restart) {
  var description = await call.pc.createOffer({ iceRestart: !!restart });
  await call.pc.setLocalDescription(description);
  send({ type: "signal", session_id: call.session, call_id: call.id, data: { sdp: call.pc.localDescription.toJSON() } });
}

/** A `call` frame for the watched session. */
export function onCallFrame(frame) {
  if (!call || frame.session_id !== call.session) return;
  if (frame.action === "ringing") { call.id = frame.call_id; return; }
  if (frame.call_id !== call.id) return;
  if (frame.action === "accepted") { setStatus("Connecting…"); connect(); offer(false); }
  else if (frame.action === "resumed") { if (call.pc) offer(true); }
  else {
    var why = { declined: "The visitor declined the call.", missed: "No answer.", failed: "The call failed: " + (frame.reason || ""), ended: "The call ended." };
    toast(why[frame.action] || "The call ended.", frame.action === "ended" ? "secondary" : "warning");
    cleanup();
  }
}
/** A `signal` frame: the visitor's answer or ICE candidates. */
export async function onSignalFrame(frame) {
  if (!call || !call.pc || frame.call_id !== call.id) return;
  try {
    if (frame.data.sdp) await call.pc.setRemoteDescription(frame.data.sdp);
    else if (frame.data.candidate) await call.pc.addIceCandidate(frame.data.candidate);
  } catch (e) { console.warn("signal", e); }
}
/** Refused by the server (visitor offline, a call already running). */
export function onCallRefused(message) {
  if (call && !call.id) { toast(message, "warning"); cleanup(); return true; }
  return false;
}

async function quality() {
  if (!call || !call.pc) return null;
  try {
    var out = { muted: $("call-mute").getAttribute("aria-pressed") === "true", video_off: $("call-camera").getAttribute("aria-pressed") === "true" };
    (await call.pc.getStats()).forEach(function (r) {
      if (r.type === "candidate-pair" && r.nominated) out.rtt_ms = Math.round((r.currentRoundTripTime || 0) * 1000);
      if (r.type === "inbound-rtp" && r.kind === "video") { out.packets_lost = r.packetsLost; out.frames_decoded = r.framesDecoded; }
    });
    return out;
  } catch (e) { return null; }
}
export async function hangUp() {
  if (!call) return;
  if (call.id) send({ type: "call", session_id: call.session, call_id: call.id, action: "hangup", quality: await quality() });
  cleanup();
}
function cleanup() {
  if (!call) return;
  clearInterval(call.timer);
  if (call.pc) call.pc.close();
  call.local.getTracks().forEach(function (t) { t.stop(); });
  $("call-local").srcObject = null; $("call-remote").srcObject = null;
  $("call-panel").setAttribute("data-state", "ended");
  call = null;
  show(false);
}
export function leaveSession() { if (call) hangUp(); }

$("s-call").addEventListener("click", startCall);
$("call-hangup").addEventListener("click", hangUp);
$("call-mute").addEventListener("click", function () {
  if (!call) return;
  var on = $("call-mute").getAttribute("aria-pressed") !== "true";
  call.local.getAudioTracks().forEach(function (t) { t.enabled = !on; });
  $("call-mute").setAttribute("aria-pressed", String(on));
});
$("call-camera").addEventListener("click", function () {
  if (!call) return;
  var off = $("call-camera").getAttribute("aria-pressed") !== "true";
  call.local.getVideoTracks().forEach(function (t) { t.enabled = !off; });
  $("call-camera").setAttribute("aria-pressed", String(off));
});
