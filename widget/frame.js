/* chathub widget chat frame. Speaks the visitor socket protocol
 * (docs/protocol.md). Keeps the conversation token and the last seen seq in
 * localStorage, resumes after a reload or a dropped connection (backoff with
 * jitter), resends unacknowledged messages with the same client_msg_id (the
 * hub stores each once), and renders all chat text as text, never HTML.
 * Files (paperclip, drag and drop, paste) are uploaded with the token, then
 * sent as a message carrying the attachment; they are fetched back with the
 * token too (an <img src> cannot send it), as blob: URLs. */
(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  var site = params.get("site") || "default";
  var channel = params.get("channel") === "test" ? "test" : "web";
  var storeKey = "chathub:" + site + ":" + channel;
  var $ = function (id) { return document.getElementById(id); };
  var log = $("log"), text = $("text"), stateEl = $("state"), typing = $("typing");
  var saved = load();
  var ws = null, attempt = 0, welcomed = false, settings = {}, visitor = null;
  var seen = {};                 // seq -> true: rendered messages
  var pageSeq = 0;               // newest seq rendered in this page: reconnects resume from it
  var outbox = saved.outbox || []; // [{id, text, files}] sent but not acked
  var rendered = {};             // client_msg_id -> element

  function load() {
    try { return JSON.parse(localStorage.getItem(storeKey)) || {}; } catch (e) { return {}; }
  }
  function persist() {
    try {
      localStorage.setItem(storeKey, JSON.stringify({ token: saved.token || null, lastSeq: saved.lastSeq || 0, outbox: outbox, rated: saved.rated || null }));
    } catch (e) { /* private mode: the chat still works, it just won't resume */ }
  }
  function setState(s) { stateEl.textContent = s; }
  // White or black, whichever reads better on the site's colour (WCAG
  // relative luminance; white wins down to the 4.5:1 of Bootstrap's blue).
  function textOn(hex) {
    var h = hex.slice(1);
    if (h.length < 6) h = h.split("").map(function (c) { return c + c; }).join("");
    var lum = [0, 2, 4].map(function (i) {
      var c = parseInt(h.substr(i, 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var l = 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2];
    return 1.05 / (l + 0.05) >= 4.5 ? "#fff" : "#000";
  }
  // What the header says once connected: who the visitor is talking to.
  var online = false, status = "active", joined = null;
  function renderState() {
    if (!online) return;
    if (joined) setState("Chatting with " + joined);
    else if (status === "escalated") setState("Waiting for a person");
    else setState("Online");
  }
  function scroll() { log.scrollTop = log.scrollHeight; }
  function newId() {
    var a = new Uint8Array(12); crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  var labels = { ai: "Assistant", agent: "Team", system: "", visitor: "You" };

  function clock(iso) {
    var t = iso ? new Date(iso) : new Date();
    var at = document.createElement("time");
    at.className = "at";
    at.dateTime = t.toISOString();
    at.textContent = t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return at;
  }
  // Attachments: fetched with the conversation token, shown as bounded
  // thumbnails (images) or as a download link (everything else).
  var blobs = {}; // url -> Promise of a blob: URL
  function authed(url) {
    if (!blobs[url]) {
      blobs[url] = fetch(url, { headers: { Authorization: "Bearer " + saved.token } })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.blob(); })
        .then(function (b) { return URL.createObjectURL(b); });
      blobs[url].catch(function () { delete blobs[url]; });
    }
    return blobs[url];
  }
  function size(bytes) {
    return bytes < 1024 ? bytes + " B" : bytes < 1048576 ? Math.round(bytes / 1024) + " KB" : (bytes / 1048576).toFixed(1) + " MB";
  }
  function fileNode(a) {
    var link = document.createElement("a");
    link.className = "file";
    link.href = "#";
    if (/^image\//.test(a.content_type)) {
      var img = document.createElement("img");
      img.className = "thumb";
      img.alt = a.name;
      authed(a.url).then(function (url) { img.src = url; }, function () { img.alt = a.name + " (not available)"; });
      link.appendChild(img);
      link.setAttribute("aria-label", "Open " + a.name);
      link.addEventListener("click", function (e) { e.preventDefault(); authed(a.url).then(function (url) { window.open(url, "_blank", "noopener"); }); });
    } else {
      link.textContent = "📄 " + a.name + " (" + size(a.size) + ")";
      link.setAttribute("data-download", a.name);
      link.addEventListener("click", function (e) {
        e.preventDefault();
        authed(a.url).then(function (url) {
          var save = document.createElement("a");
          save.href = url; save.download = a.name;
          document.body.appendChild(save); save.click(); save.remove();
        });
      });
    }
    return link;
  }
  function bubble(role, body, author, createdAt, files) {
    var li = document.createElement("li");
    li.className = "msg " + role;
    if (labels[role]) {
      var who = document.createElement("span");
      who.className = "who";
      // A staff member signs with their display name.
      who.textContent = (role === "agent" && author) || labels[role];
      li.appendChild(who);
    }
    if (body) li.appendChild(window.chathubLinkify(body));
    (files || []).forEach(function (a) { li.appendChild(fileNode(a)); });
    if (role !== "greeting") li.appendChild(clock(createdAt));
    log.appendChild(li);
    scroll();
    return li;
  }
  // Read receipts (docs/protocol.md): the newest message on screen is
  // reported read while the chat is open and the tab visible; staff's reads
  // show as "Seen" under the visitor's newest message they have read.
  var open = false, readSent = 0, staffRead = 0;
  function reportRead() {
    if (!open || document.visibilityState !== "visible" || !ws || ws.readyState !== 1 || !welcomed || pageSeq <= readSent) return;
    readSent = pageSeq;
    ws.send(JSON.stringify({ type: "read", seq: pageSeq }));
  }
  document.addEventListener("visibilitychange", reportRead);
  function showSeen() {
    var mine = Array.prototype.filter.call(log.querySelectorAll(".msg.visitor[data-seq]"), function (li) { return Number(li.getAttribute("data-seq")) <= staffRead; });
    log.querySelectorAll(".seen").forEach(function (s) { s.remove(); });
    var last = mine[mine.length - 1];
    if (!last) return;
    var label = document.createElement("span");
    label.className = "seen";
    label.textContent = "Seen";
    last.appendChild(label);
  }
  function showMessage(m) {
    if (seen[m.seq]) return;
    seen[m.seq] = true;
    if (m.seq > pageSeq) pageSeq = m.seq;
    var li = bubble(m.role, m.text, m.author, m.created_at, m.attachments);
    li.setAttribute("data-seq", m.seq);
    // A visitor's stored message is delivered, also after a reload.
    if (m.role === "visitor") markSent(li, "delivered");
    if (m.role === "agent" && m.author) { joined = m.author; renderState(); }
    if (m.seq > (saved.lastSeq || 0)) { saved.lastSeq = m.seq; persist(); }
  }
  function markSent(li, state) {
    var tick = li.querySelector(".tick");
    if (!tick) { tick = document.createElement("span"); tick.className = "tick"; li.appendChild(tick); }
    tick.textContent = state === "delivered" ? "✓✓" : state === "failed" ? "!" : "✓";
    tick.title = state;
    li.setAttribute("data-state", state);
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/ws/chat?site=" + encodeURIComponent(site) + (channel === "test" ? "&channel=test" : ""));
    setState("Connecting…");
    ws.onopen = function () {
      // A fresh page has nothing on screen, so it asks for everything; a
      // reconnect within the page asks only for what it missed.
      var hello = { type: "hello", token: saved.token || null, last_seq: saved.token ? pageSeq : 0 };
      if (visitor) hello.visitor = visitor;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = function (event) {
      var f;
      try { f = JSON.parse(event.data); } catch (e) { return; }
      if (f.type === "welcome") {
        welcomed = true; attempt = 0;
        saved.token = f.token; persist();
        online = true;
        renderState();
        f.messages.forEach(showMessage);
        showSeen();
        reportRead();
        // Anything not acknowledged before the break goes again (same id: stored once).
        outbox.forEach(function (m) { ws.send(JSON.stringify(frameOf(m))); });
        waiting.splice(0).forEach(function (go) { go(); });
      } else if (f.type === "ack") {
        var shownAlready = seen[f.seq];
        seen[f.seq] = true;
        if (f.seq > pageSeq) pageSeq = f.seq;
        // Stored before a reconnect and already shown from the welcome: keep one copy.
        if (shownAlready && rendered[f.client_msg_id]) { rendered[f.client_msg_id].remove(); delete rendered[f.client_msg_id]; }
        if (f.seq > (saved.lastSeq || 0)) saved.lastSeq = f.seq;
        outbox = outbox.filter(function (m) { return m.id !== f.client_msg_id; });
        persist();
        if (rendered[f.client_msg_id]) { markSent(rendered[f.client_msg_id], "delivered"); rendered[f.client_msg_id].setAttribute("data-seq", f.seq); }
        showSeen();
        reportRead();
      } else if (f.type === "message") {
        typing.hidden = true;
        showMessage(f.message);
        reportRead();
      } else if (f.type === "call") {
        onCall(f);
      } else if (f.type === "signal") {
        onSignal(f);
      } else if (f.type === "read") {
        if (f.seq > staffRead) { staffRead = f.seq; showSeen(); }
      } else if (f.type === "status") {
        status = f.status;
        if (f.status === "resolved" || f.completion === "complete") askRating();
        if (status !== "escalated") joined = null;
        renderState();
      } else if (f.type === "typing") {
        $("typing-who").textContent = (f.role === "agent" ? "Team" : "Assistant") + " is typing";
        typing.hidden = !f.on;
        if (f.on) scroll();
      } else if (f.type === "error") {
        if (f.code === "invalid_token") {
          // The conversation is gone (deleted, or another site's): start afresh.
          saved.token = null; saved.lastSeq = 0; persist();
          ws.send(JSON.stringify({ type: "hello", token: null, last_seq: 0, visitor: visitor || undefined }));
        } else if (f.client_msg_id && rendered[f.client_msg_id] && f.code !== "retry" && f.code !== "rate_limited") {
          markSent(rendered[f.client_msg_id], "failed");
          outbox = outbox.filter(function (m) { return m.id !== f.client_msg_id; }); persist();
        }
      }
    };
    ws.onclose = function (event) {
      welcomed = false; online = false;
      if (event.code === 4004) { saved.token = null; saved.lastSeq = 0; persist(); }
      attempt += 1;
      var delay = Math.min(30000, 500 * Math.pow(2, attempt)) * (0.8 + Math.random() * 0.4);
      setState("Reconnecting…");
      setTimeout(connect, delay);
    };
  }

  function frameOf(m) {
    return { type: "message", client_msg_id: m.id, text: m.text, attachments: (m.files || []).map(function (a) { return a.id; }) };
  }
  function send(body, files, li) {
    var id = newId();
    li = li || bubble("visitor", body, null, null, files);
    rendered[id] = li;
    markSent(li, "sent");
    var m = { id: id, text: body, files: files || [] };
    outbox.push(m); persist();
    if (ws && welcomed && ws.readyState === 1) ws.send(JSON.stringify(frameOf(m)));
  }

  // Uploads wait for the conversation's token (the first welcome).
  var waiting = [];
  var UPLOAD_ERRORS = { 413: "is too large to send", 415: "is not a kind of file that can be sent", 429: "was not sent: too many files, try again later" };
  function upload(file) {
    var li = bubble("visitor", "");
    var progress = document.createElement("span");
    progress.className = "progress";
    progress.setAttribute("role", "status");
    progress.textContent = "Uploading " + file.name + "…";
    li.insertBefore(progress, li.firstChild);
    var limit = settings.attachments && settings.attachments.max_bytes;
    function fail(why) {
      progress.textContent = file.name + " " + why;
      markSent(li, "failed");
    }
    if (limit && file.size > limit) return fail(UPLOAD_ERRORS[413] + " (at most " + size(limit) + ")");
    function go() {
      var form = new FormData();
      form.append("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/attachments");
      xhr.setRequestHeader("Authorization", "Bearer " + saved.token);
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) progress.textContent = "Uploading " + file.name + "… " + Math.round(100 * e.loaded / e.total) + "%";
      };
      xhr.onload = function () {
        if (xhr.status !== 201) return fail(UPLOAD_ERRORS[xhr.status] || "could not be sent");
        var a = JSON.parse(xhr.responseText).attachment;
        progress.remove();
        li.insertBefore(fileNode(a), li.querySelector(".at"));
        send("", [a], li);
      };
      xhr.onerror = function () { fail("could not be sent (connection lost)"); };
      xhr.send(form);
    }
    if (saved.token && welcomed) go(); else waiting.push(go);
  }
  function uploadAll(files) { Array.prototype.forEach.call(files || [], upload); }
  $("attach").addEventListener("click", function () { $("file").click(); });
  $("file").addEventListener("change", function () { uploadAll($("file").files); $("file").value = ""; });
  $("chat").addEventListener("dragover", function (e) {
    if (e.dataTransfer && Array.prototype.indexOf.call(e.dataTransfer.types, "Files") >= 0) { e.preventDefault(); $("chat").classList.add("dropping"); }
  });
  $("chat").addEventListener("dragleave", function () { $("chat").classList.remove("dropping"); });
  $("chat").addEventListener("drop", function (e) {
    $("chat").classList.remove("dropping");
    if (e.dataTransfer && e.dataTransfer.files.length) { e.preventDefault(); uploadAll(e.dataTransfer.files); }
  });

  $("compose").addEventListener("submit", function (e) {
    e.preventDefault();
    var body = text.value.trim();
    if (!body) return;
    text.value = "";
    renderCount(false);
    send(body);
  });
  text.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("compose").requestSubmit(); }
  });
  // Near the limit a counter shows; a paste past it says it was cut.
  var MAX = Number(text.getAttribute("maxlength"));
  function renderCount(cut) {
    var count = $("count");
    count.hidden = !cut && text.value.length < MAX * 0.9;
    count.textContent = text.value.length + " / " + MAX + (cut ? " — cut to fit" : "");
    count.classList.toggle("cut", !!cut);
  }
  text.addEventListener("paste", function (e) {
    // A pasted image (a screenshot) is sent as a file.
    var files = e.clipboardData && e.clipboardData.files;
    if (files && files.length) { e.preventDefault(); uploadAll(files); return; }
    var pasted = (e.clipboardData && e.clipboardData.getData("text")) || "";
    var room = MAX - (text.value.length - (text.selectionEnd - text.selectionStart));
    if (pasted.length > room) setTimeout(function () { renderCount(true); }, 0);
  });
  text.addEventListener("input", function () { renderCount(false); });
  var typingTimer = null;
  text.addEventListener("input", function () {
    if (!ws || !welcomed) return;
    if (!typingTimer) ws.send(JSON.stringify({ type: "typing", on: true }));
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { typingTimer = null; if (ws && welcomed) ws.send(JSON.stringify({ type: "typing", on: false })); }, 2000);
  });
  $("close").addEventListener("click", function () { open = false; parent.postMessage({ type: "chathub:close" }, "*"); });
  // Escape closes the chat (focus goes back to the bubble).
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { open = false; parent.postMessage({ type: "chathub:close" }, "*"); }
  });
  // Inside the dashboard's Test AI window, which has its own close button
  // and passes on the dashboard's light or dark theme.
  function applyTheme(theme) { document.documentElement.setAttribute("data-theme", theme === "dark" ? "dark" : "light"); }
  if (channel === "test") {
    open = true; // the Test AI window is open whenever its frame exists
    $("close").hidden = true;
    applyTheme(params.get("theme"));
  }
  window.addEventListener("message", function (e) {
    if (!e.data) return;
    if (e.data.type === "chathub:opened") { open = true; reportRead(); if (e.data.focus !== false) text.focus(); }
    if (e.data.type === "chathub:theme" && e.origin === location.origin && channel === "test") applyTheme(e.data.theme);
  });

  // Video calls (SPEC §14): staff ring; the visitor accepts or declines;
  // the call runs in this frame (the embedding iframe allows camera and
  // microphone). Signaling goes over the chat socket, media browser to
  // browser. No camera or a refused permission ends the call as failed.
  var call = null; // { id, pc, local, pending }
  function callSend(frame) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame)); }
  function showCall(mode) {
    $("call").hidden = mode === "off";
    $("call-ring").hidden = mode !== "ring";
    $("call-live").hidden = mode !== "live";
    if (mode !== "off") scroll();
  }
  function endCall(note) {
    if (call) {
      if (call.pc) call.pc.close();
      if (call.local) call.local.getTracks().forEach(function (t) { t.stop(); });
    }
    call = null;
    $("call-remote").srcObject = null; $("call-local").srcObject = null;
    $("call").setAttribute("data-state", "ended");
    if (note) { $("call-note").textContent = note; $("call-note").hidden = false; }
    showCall("off");
  }
  function onCall(f) {
    if (f.action === "ring") {
      if (call && call.id !== f.call_id) return;
      call = { id: f.call_id, pc: null, local: null };
      $("call-from").textContent = (f.from || "Our team") + (settings.name ? " from " + settings.name : "") + " would like a video call";
      $("call-note").hidden = true;
      showCall("ring");
    } else if (f.action === "resumed") {
      if (!call || call.id !== f.call_id) callSend({ type: "call", call_id: f.call_id, action: "hangup" });
    } else if (call && call.id === f.call_id) {
      endCall(f.action === "missed" ? "You missed a video call." : "The video call ended.");
    }
  }
  async function onSignal(f) {
    if (!call || !call.pc || call.id !== f.call_id) return;
    try {
      if (f.data.sdp) {
        await call.pc.setRemoteDescription(f.data.sdp);
        if (f.data.sdp.type === "offer") {
          await call.pc.setLocalDescription(await call.pc.createAnswer());
          callSend({ type: "signal", call_id: call.id, data: { sdp: call.pc.localDescription.toJSON() } });
        }
      } else if (f.data.candidate) {
        await call.pc.addIceCandidate(f.data.candidate);
      }
    } catch (e) { /* a late candidate after hang-up */ }
  }
  $("call-accept").addEventListener("click", async function () {
    if (!call) return;
    var id = call.id;
    var local;
    try {
      local = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    } catch (e) {
      var reason = e && e.name === "NotAllowedError" ? "the visitor refused camera and microphone access" : "no camera or microphone";
      callSend({ type: "call", call_id: id, action: "failed", reason: reason });
      endCall(e && e.name === "NotAllowedError" ? "You did not allow the camera and microphone, so the call could not start." : "No camera or microphone was found, so the call could not start.");
      return;
    }
    var ice = await fetch("/api/calls/ice-servers", { headers: { Authorization: "Bearer " + saved.token } })
      .then(function (r) { return r.ok ? r.json() : { ice_servers: [] }; }).catch(function () { return { ice_servers: [] }; });
    if (!call || call.id !== id) { local.getTracks().forEach(function (t) { t.stop(); }); return; }
    call.local = local;
    var pc = new RTCPeerConnection({ iceServers: ice.ice_servers });
    call.pc = pc;
    local.getTracks().forEach(function (t) { pc.addTrack(t, local); });
    pc.onicecandidate = function (e) { if (e.candidate) callSend({ type: "signal", call_id: id, data: { candidate: e.candidate.toJSON() } }); };
    pc.ontrack = function (e) { $("call-remote").srcObject = e.streams[0]; };
    pc.onconnectionstatechange = function () { $("call").setAttribute("data-state", pc.connectionState); };
    $("call-local").srcObject = local;
    showCall("live");
    callSend({ type: "call", call_id: id, action: "accept" });
  });
  $("call-decline").addEventListener("click", function () {
    if (call) callSend({ type: "call", call_id: call.id, action: "decline" });
    endCall("");
  });
  $("call-hangup").addEventListener("click", function () {
    if (call) callSend({ type: "call", call_id: call.id, action: "hangup" });
    endCall("The video call ended.");
  });
  $("call-mute").addEventListener("click", function () {
    if (!call || !call.local) return;
    var on = $("call-mute").getAttribute("aria-pressed") !== "true";
    call.local.getAudioTracks().forEach(function (t) { t.enabled = !on; });
    $("call-mute").setAttribute("aria-pressed", String(on));
  });
  $("call-camera").addEventListener("click", function () {
    if (!call || !call.local) return;
    var off = $("call-camera").getAttribute("aria-pressed") !== "true";
    call.local.getVideoTracks().forEach(function (t) { t.enabled = !off; });
    $("call-camera").setAttribute("aria-pressed", String(off));
  });

  // The customer's verdict (SPEC §16): asked once per conversation when it
  // is resolved or completes; skipping counts as answered.
  var score = 0;
  function askRating() {
    if (saved.rated === saved.token || !$("csat").hidden) return;
    $("csat").hidden = false;
    scroll();
  }
  function rated() {
    saved.rated = saved.token; persist();
  }
  $("csat").querySelectorAll("[data-score]").forEach(function (star) {
    star.addEventListener("click", function () {
      score = Number(star.getAttribute("data-score"));
      $("csat").querySelectorAll("[data-score]").forEach(function (s) {
        var on = Number(s.getAttribute("data-score")) <= score;
        s.classList.toggle("on", on);
        s.setAttribute("aria-checked", String(s === star));
      });
      $("csat-send").disabled = false;
    });
  });
  $("csat").addEventListener("submit", function (e) {
    e.preventDefault();
    if (!score || !ws || ws.readyState !== 1) return;
    var comment = $("csat-comment").value.trim();
    ws.send(JSON.stringify({ type: "csat", score: score, comment: comment || undefined }));
    rated();
    $("csat").replaceChildren(Object.assign(document.createElement("p"), { className: "thanks", textContent: "Thank you for your feedback!" }));
  });
  $("csat-skip").addEventListener("click", function () { rated(); $("csat").hidden = true; });

  $("prechat").addEventListener("submit", function (e) {
    e.preventDefault();
    var name = $("pc-name").value.trim(), email = $("pc-email").value.trim();
    var ok = name && /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email);
    $("pc-error").hidden = !!ok;
    $("pc-error").textContent = ok ? "" : "Please enter your name and a valid email address.";
    if (!ok) return;
    visitor = { name: name, email: email };
    $("prechat").hidden = true;
    $("compose").hidden = false;
    connect();
  });

  function start() {
    if (settings.greeting) { var g = bubble("greeting", settings.greeting); g.className = "msg greeting"; }
    if (settings.prechat_form && !saved.token && channel !== "test") {
      $("prechat").hidden = false;
      $("compose").hidden = true;
      setState("");
    } else {
      connect();
    }
    // Redraw unacknowledged messages from before a reload.
    outbox.forEach(function (m) { var li = bubble("visitor", m.text, null, null, m.files); rendered[m.id] = li; markSent(li, "sent"); });
  }
  fetch("/api/sites/" + encodeURIComponent(site) + "/public")
    .then(function (r) { return r.ok ? r.json() : {}; })
    .catch(function () { return {}; })
    .then(function (s) {
      settings = s || {};
      if (/^#[0-9a-fA-F]{3,8}$/.test(settings.color || "")) {
        document.documentElement.style.setProperty("--brand", settings.color);
        document.documentElement.style.setProperty("--on-brand", textOn(settings.color));
      }
      if (settings.name) $("title").textContent = settings.name;
      if (settings.attachments && settings.attachments.types) $("file").accept = settings.attachments.types.join(",");
      parent.postMessage({ type: "chathub:settings", color: settings.color, position: settings.position }, "*");
      start();
    });
})();
