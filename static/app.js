/* chathub staff dashboard. Vanilla JS over the staff API (docs/api.md) and
 * the dashboard socket (docs/protocol.md). Every piece of chat text is put
 * into the page with textContent, never as HTML. */
(function () {
  "use strict";

  // ---- small helpers -------------------------------------------------------
  var $ = function (id) { return document.getElementById(id); };
  var state = { me: null, csrf: null, socket: null, rows: [], total: 0, page: 1, perPage: 25, watching: null,
                lastSeq: 0, selected: new Set(), charts: {}, statsTimer: null, reconnect: 0,
                shown: {} /* session id -> updated_at of the newest summary shown */ };

  /** Builds an element; string children become text nodes (never HTML). */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") node.className = attrs[k];
      else if (k === "text") node.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) node.setAttribute(k, attrs[k]);
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    }
    return node;
  }
  function when(iso) { return iso ? new Date(iso).toLocaleString() : "—"; }
  function toast(message, kind) {
    var t = el("div", { class: "toast align-items-center text-bg-" + (kind || "secondary") + " border-0", role: "status" },
      el("div", { class: "d-flex" }, el("div", { class: "toast-body", text: message }),
        el("button", { type: "button", class: "btn-close btn-close-white me-2 m-auto", "data-bs-dismiss": "toast", "aria-label": "Close" })));
    $("toasts").appendChild(t);
    var bt = new bootstrap.Toast(t, { delay: 3500 });
    t.addEventListener("hidden.bs.toast", function () { t.remove(); });
    bt.show();
  }
  function can(roles) { return state.me && roles.split(",").indexOf(state.me.role) >= 0; }
  function applyRoles(root) {
    (root || document).querySelectorAll("[data-roles]").forEach(function (node) {
      node.hidden = !can(node.getAttribute("data-roles"));
      if (node.classList.contains("nav-item")) node.classList.toggle("d-none", node.hidden);
    });
  }

  async function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    var response = await fetch(path, { method: method, headers: headers, credentials: "same-origin",
                                       body: body === undefined ? undefined : JSON.stringify(body) });
    var data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (response.status === 401 && path !== "/api/auth/login") { showLogin(); throw new Error("signed out"); }
    if (!response.ok) {
      var message = data && data.error ? data.error.message : response.statusText;
      throw Object.assign(new Error(message), { status: response.status });
    }
    return data;
  }
  function confirmAction(title, body) {
    return new Promise(function (resolve) {
      $("confirm-title").textContent = title;
      $("confirm-body").textContent = body;
      var modal = bootstrap.Modal.getOrCreateInstance($("confirm"));
      var ok = $("confirm-ok");
      var done = function (answer) { ok.onclick = null; $("confirm").removeEventListener("hidden.bs.modal", onHide); resolve(answer); };
      var onHide = function () { done(false); };
      ok.onclick = function () { $("confirm").removeEventListener("hidden.bs.modal", onHide); modal.hide(); done(true); };
      $("confirm").addEventListener("hidden.bs.modal", onHide);
      modal.show();
    });
  }

  // ---- theme ---------------------------------------------------------------
  function setTheme(theme) {
    document.documentElement.setAttribute("data-bs-theme", theme);
    localStorage.setItem("chathub-theme", theme);
    $("theme-toggle").replaceChildren(el("i", { class: theme === "dark" ? "fa-solid fa-sun" : "fa-solid fa-moon" }));
    Object.values(state.charts).forEach(function (c) { c.update(); });
  }
  $("theme-toggle").addEventListener("click", function () {
    setTheme(document.documentElement.getAttribute("data-bs-theme") === "dark" ? "light" : "dark");
  });
  setTheme(localStorage.getItem("chathub-theme") || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));

  // ---- sign in -------------------------------------------------------------
  function showLogin() {
    state.me = null;
    if (state.socket) { state.socket.onclose = null; state.socket.close(); state.socket = null; }
    $("app-view").classList.add("d-none");
    $("login-view").classList.remove("d-none");
    $("login-username").focus();
  }
  $("login-form").addEventListener("submit", async function (e) {
    e.preventDefault();
    $("login-error").classList.add("d-none");
    try {
      var data = await api("POST", "/api/auth/login", { username: $("login-username").value, password: $("login-password").value });
      $("login-password").value = "";
      signedIn(data);
    } catch (err) {
      $("login-error").textContent = err.status === 429 ? "Too many attempts; wait a moment." : "Wrong username or password.";
      $("login-error").classList.remove("d-none");
    }
  });
  $("logout").addEventListener("click", async function () {
    try { await api("POST", "/api/auth/logout"); } catch (e) { /* signed out anyway */ }
    showLogin();
  });
  function signedIn(data) {
    state.me = data.user;
    state.csrf = data.csrf_token;
    $("whoami").textContent = data.user.username + " (" + data.user.role + ")";
    $("login-view").classList.add("d-none");
    $("app-view").classList.remove("d-none");
    applyRoles();
    connectSocket();
    route();
  }

  // ---- the dashboard socket ------------------------------------------------
  function connectSocket() {
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    var socket = new WebSocket(proto + "//" + location.host + "/ws/dashboard");
    state.socket = socket;
    socket.onopen = function () {
      state.reconnect = 0;
      $("live").classList.add("on");
      if (state.watching) socket.send(JSON.stringify({ type: "watch", session_id: state.watching, last_seq: state.lastSeq }));
    };
    socket.onmessage = function (event) {
      var frame = JSON.parse(event.data);
      if (frame.type === "session") onSessionFrame(frame.session);
      else if (frame.type === "session_deleted") removeRows([frame.session_id], false);
      else if (frame.type === "message" && frame.session_id === state.watching) appendMessage(frame.message);
      else if (frame.type === "typing" && frame.session_id === state.watching) showTyping(frame.role, frame.on);
      else if (frame.type === "takeover" && frame.session_id === state.watching) $("s-takeover").checked = frame.handler === "human";
      else if (frame.type === "error") toast(frame.message, "danger");
    };
    socket.onclose = function (event) {
      $("live").classList.remove("on");
      if (event.code === 4401 || !state.me) { if (event.code === 4401) showLogin(); return; }
      state.reconnect += 1;
      setTimeout(connectSocket, Math.min(15000, 500 * Math.pow(2, state.reconnect)));
    };
  }

  // ---- routing -------------------------------------------------------------
  function parseHash() {
    var hash = location.hash.replace(/^#/, "") || "/sessions";
    var parts = hash.split("?");
    return { path: parts[0], query: new URLSearchParams(parts[1] || "") };
  }
  function show(view) {
    document.querySelectorAll(".view").forEach(function (v) { v.classList.add("d-none"); });
    $("view-" + view).classList.remove("d-none");
    document.querySelectorAll("[data-nav]").forEach(function (a) {
      var active = a.getAttribute("data-nav") === view || (view === "session" && a.getAttribute("data-nav") === "sessions");
      a.classList.toggle("active", active);
      if (active) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    });
  }
  function route() {
    if (!state.me) return;
    var r = parseHash();
    var m = r.path.match(/^\/sessions\/([0-9a-f-]{36})$/);
    if (state.watching && (!m || m[1] !== state.watching)) unwatch();
    if (m) { show("session"); openSession(m[1]); return; }
    if (r.path === "/escalations") { show("escalations"); loadEscalations(); return; }
    if (r.path === "/errors") { show("errors"); loadErrors(); return; }
    if (r.path === "/deliveries") { show("deliveries"); loadDeliveries(); return; }
    if (r.path === "/users" && can("admin")) { show("users"); loadUsers(); return; }
    if (r.path === "/settings" && can("admin")) { show("settings"); loadSettings(); return; }
    show("sessions");
    loadSessions(r.query);
  }
  window.addEventListener("hashchange", route);

  // ---- sessions list -------------------------------------------------------
  var FILTERS = ["from", "to", "channel", "completion", "qa_status", "status", "q"];
  function currentFilters() {
    var q = new URLSearchParams();
    FILTERS.forEach(function (name) { var v = $("filters").elements[name].value; if (v) q.set(name, v); });
    return q;
  }
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

  async function loadSessions(query) {
    FILTERS.forEach(function (name) { $("filters").elements[name].value = query.get(name) || ""; });
    state.page = Math.max(1, parseInt(query.get("page") || "1", 10));
    var q = new URLSearchParams(query); q.set("page", String(state.page)); q.set("per_page", String(state.perPage));
    state.selected.clear(); updateBulkBar();
    try {
      var page = await api("GET", "/api/sessions?" + q);
      state.rows = page.sessions; state.total = page.total;
      renderRows();
    } catch (err) { toast("Could not load sessions: " + err.message, "danger"); }
    loadStats();
  }
  var BADGE = { complete: "success", in_progress: "info", incomplete: "secondary", unchecked: "secondary", passed: "success",
                issue: "danger", fixed: "primary", active: "success", resolved: "secondary", escalated: "warning", archived: "dark" };
  function badge(value) { return el("span", { class: "badge text-bg-" + (BADGE[value] || "secondary"), text: String(value).replace("_", " ") }); }
  function customerName(s) { return s.customer.name || s.customer.email || s.customer.phone || s.external_id || "Anonymous visitor"; }
  function rowFor(s) {
    var box = el("input", { class: "form-check-input", type: "checkbox", "aria-label": "Select " + customerName(s) });
    box.checked = state.selected.has(s.id);
    box.addEventListener("change", function () { if (box.checked) state.selected.add(s.id); else state.selected.delete(s.id); updateBulkBar(); });
    return el("tr", { "data-id": s.id },
      el("td", {}, box),
      el("td", {}, el("a", { href: "#/sessions/" + s.id, text: customerName(s) }),
        s.customer.email && s.customer.name ? el("div", { class: "small text-body-secondary", text: s.customer.email }) : null),
      el("td", {}, el("span", { class: "small", text: s.channel })),
      el("td", {}, el("span", { class: "preview small", text: s.last_message_preview || "" })),
      el("td", {}, badge(s.completion)),
      el("td", {}, badge(s.qa_status)),
      el("td", {}, badge(s.status)),
      el("td", { text: s.message_count }),
      el("td", { class: "small", text: when(s.created_at) }));
  }
  function renderRows(flashId) {
    var body = $("sessions-body");
    body.replaceChildren.apply(body, state.rows.map(function (s) {
      var row = rowFor(s);
      if (s.id === flashId) row.classList.add("flash");
      return row;
    }));
    if (!state.rows.length) body.appendChild(el("tr", {}, el("td", { colspan: "9", class: "text-center text-body-secondary py-4", text: "No sessions match." })));
    var first = (state.page - 1) * state.perPage;
    $("page-info").textContent = state.total ? (first + 1) + "–" + (first + state.rows.length) + " of " + state.total : "0 sessions";
    $("page-prev").disabled = state.page <= 1;
    $("page-next").disabled = first + state.rows.length >= state.total;
    $("select-all").checked = false;
  }
  /** Does a live summary belong on the current page of the current filters? */
  function matches(s) {
    var q = parseHash().query;
    if (!s.message_count) return false;
    if (q.get("channel") && q.get("channel") !== s.channel) return false;
    if (q.get("completion") && q.get("completion") !== s.completion) return false;
    if (q.get("qa_status") && q.get("qa_status") !== s.qa_status) return false;
    var status = q.get("status");
    if (!status && s.status === "archived") return false;
    if (status && status !== "all" && status !== s.status) return false;
    if (q.get("q") || q.get("from") || q.get("to")) return false; // server-side filters: wait for a reload
    return true;
  }
  function onSessionFrame(s) {
    // Summaries are coalesced and may be read just before a change we have
    // already shown: never go back to an older one.
    var known = state.shown[s.id];
    if (known && known > s.updated_at) return;
    state.shown[s.id] = s.updated_at;
    if (s.id === state.watching) renderSessionPanels(s);
    if ($("view-sessions").classList.contains("d-none")) { scheduleStats(); return; }
    var i = state.rows.findIndex(function (r) { return r.id === s.id; });
    if (i >= 0 && !matches(s)) { state.rows.splice(i, 1); state.total -= 1; }
    else if (i >= 0) state.rows[i] = s;
    else if (state.page === 1 && matches(s)) { state.rows.unshift(s); state.total += 1; if (state.rows.length > state.perPage) state.rows.pop(); }
    else { scheduleStats(); return; }
    var sort = parseHash().query.get("sort");
    state.rows.sort(function (a, b) {
      var key = sort === "activity" ? function (x) { return x.last_message_at || x.created_at; } : function (x) { return x.created_at; };
      return key(b) < key(a) ? -1 : key(b) > key(a) ? 1 : 0;
    });
    renderRows(s.id);
    scheduleStats();
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
      } catch (err) { toast(err.message, "danger"); }
    });
  });
  function removeRows(ids, fade) {
    ids.forEach(function (id) {
      var row = $("sessions-body").querySelector('tr[data-id="' + CSS.escape(id) + '"]');
      var i = state.rows.findIndex(function (r) { return r.id === id; });
      if (i >= 0) { state.rows.splice(i, 1); state.total -= 1; }
      if (row) { if (fade) { row.classList.add("leaving"); setTimeout(function () { row.remove(); }, 400); } else row.remove(); }
    });
    if (state.watching && ids.indexOf(state.watching) >= 0) { toast("This session was deleted", "warning"); location.hash = "#/sessions"; }
  }

  // ---- stats and charts ----------------------------------------------------
  function scheduleStats() {
    if (state.statsTimer) return;
    state.statsTimer = setTimeout(function () { state.statsTimer = null; loadStats(); }, 2000);
  }
  async function loadStats() {
    var q = currentFilters(); q.delete("status");
    var stats;
    try { stats = await api("GET", "/api/sessions/stats?" + q); } catch (e) { return; }
    var badgeEl = $("escalation-badge");
    badgeEl.textContent = stats.open_escalations;
    badgeEl.classList.toggle("d-none", !stats.open_escalations);
    var cards = [
      ["Complete", stats.by_completion.complete, "complete"], ["In progress", stats.by_completion.in_progress, ""],
      ["Incomplete", stats.by_completion.incomplete, ""], ["QA unchecked", stats.by_qa_status.unchecked, ""],
      ["QA passed", stats.by_qa_status.passed, ""], ["QA issue", stats.by_qa_status.issue, "issue"],
      ["QA fixed", stats.by_qa_status.fixed, ""], ["Open escalations", stats.open_escalations, "escalations"]];
    $("stat-cards").replaceChildren.apply($("stat-cards"), cards.map(function (c) {
      return el("div", { class: "col-6 col-md-3 col-xl" }, el("div", { class: "card card-body py-2 stat " + c[2], "data-stat": c[0] },
        el("div", { class: "small text-body-secondary", text: c[0] }), el("div", { class: "value", text: c[1] })));
    }));
    if (typeof Chart === "undefined") return;
    var days = stats.per_day.map(function (d) { return d.day; });
    chart("days", "chart-days", "line", { labels: days, datasets: [
      { label: "Sessions", data: stats.per_day.map(function (d) { return d.sessions; }), tension: 0.25 },
      { label: "Completions", data: stats.per_day.map(function (d) { return d.completions; }), tension: 0.25 }] });
    chart("qa", "chart-qa", "doughnut", { labels: ["unchecked", "passed", "issue", "fixed"], datasets: [
      { data: ["unchecked", "passed", "issue", "fixed"].map(function (k) { return stats.by_qa_status[k]; }),
        backgroundColor: ["#adb5bd", "#198754", "#dc3545", "#0d6efd"] }] });
    chart("latency", "chart-latency", "bar", { labels: ["median", "p90"], datasets: [
      { label: "ms", data: [stats.ai_response_ms.median || 0, stats.ai_response_ms.p90 || 0], backgroundColor: "#6f42c1" }] });
  }
  function chart(name, canvas, type, data) {
    if (state.charts[name]) { state.charts[name].data = data; state.charts[name].update(); return; }
    state.charts[name] = new Chart($(canvas), { type: type, data: data,
      options: { animation: false, plugins: { legend: { display: type !== "bar" } }, maintainAspectRatio: false } });
  }

  // ---- one session ---------------------------------------------------------
  var ROLE_LABEL = { visitor: "Visitor", ai: "AI", agent: "Staff", system: "System" };
  async function openSession(id) {
    var data;
    try { data = await api("GET", "/api/sessions/" + id); } catch (err) { toast(err.message, "danger"); return; }
    $("transcript").replaceChildren();
    state.lastSeq = 0;
    data.messages.forEach(appendMessage);
    var after = data.next_after_seq;
    while (after) {
      var more = await api("GET", "/api/sessions/" + id + "?after_seq=" + after);
      more.messages.forEach(appendMessage);
      after = more.next_after_seq;
    }
    renderSessionPanels(data.session);
    renderHistory(data.qa_history);
    $("qa-notes").value = data.session.qa_notes || "";
    $("dev-feedback").value = data.session.dev_feedback || "";
    applyRoles($("view-session"));
    state.watching = id;
    if (state.socket && state.socket.readyState === 1) {
      state.socket.send(JSON.stringify({ type: "watch", session_id: id, last_seq: state.lastSeq }));
    }
  }
  function unwatch() {
    if (state.socket && state.socket.readyState === 1) state.socket.send(JSON.stringify({ type: "unwatch", session_id: state.watching }));
    state.watching = null;
  }
  function appendMessage(m) {
    if (m.seq <= state.lastSeq) return;
    state.lastSeq = m.seq;
    var li = el("li", { class: m.role, "data-seq": m.seq },
      el("span", { class: "meta", text: (ROLE_LABEL[m.role] || m.role) + " · " + new Date(m.created_at).toLocaleTimeString() }),
      m.text);
    $("transcript").appendChild(li);
    $("transcript").scrollTop = $("transcript").scrollHeight;
    if (m.role !== "visitor") $("s-typing").hidden = true;
  }
  function showTyping(role, on) {
    $("s-typing-who").textContent = (ROLE_LABEL[role] || role) + " is typing…";
    $("s-typing").hidden = !on;
  }
  function renderSessionPanels(s) {
    if (!state.shown[s.id] || state.shown[s.id] < s.updated_at) state.shown[s.id] = s.updated_at;
    $("s-title").textContent = customerName(s);
    var c = $("s-completion"); c.className = "badge text-bg-" + (BADGE[s.completion] || "secondary"); c.textContent = s.completion.replace("_", " ");
    $("s-status").textContent = s.status;
    $("s-archive").textContent = s.status === "archived" ? "Unarchive" : "Archive";
    $("s-takeover").checked = s.handler === "human";
    var rows = [["Name", s.customer.name], ["Email", s.customer.email], ["Phone", s.customer.phone], ["Channel", s.channel],
      ["Site", s.site], ["Completion rule", s.completion_rule], ["Completed", s.completed_at ? when(s.completed_at) : null],
      ["Handler", s.handler], ["Priority", s.priority], ["Assignee", s.assignee], ["Started", when(s.created_at)]];
    $("s-customer").replaceChildren.apply($("s-customer"), rows.reduce(function (acc, r) {
      acc.push(el("dt", { class: "col-5", text: r[0] }), el("dd", { class: "col-7 mb-1", text: r[1] || "—" }));
      return acc;
    }, []));
    document.querySelectorAll("#qa-buttons [data-qa]").forEach(function (b) {
      b.classList.toggle("active", b.getAttribute("data-qa") === s.qa_status);
      b.setAttribute("aria-pressed", String(b.getAttribute("data-qa") === s.qa_status));
    });
    $("dev-by").textContent = s.dev_feedback_by ? "by " + s.dev_feedback_by + ", " + when(s.dev_feedback_at) : "";
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
  $("dev-save").addEventListener("click", async function () {
    try {
      var s = await api("PUT", "/api/sessions/" + state.watching + "/dev-feedback", { dev_feedback: $("dev-feedback").value });
      renderSessionPanels(s); toast("Feedback saved", "success");
    } catch (err) { toast(err.message, "danger"); }
  });
  $("s-takeover").addEventListener("change", function () {
    state.socket.send(JSON.stringify({ type: "takeover", session_id: state.watching, on: $("s-takeover").checked }));
  });
  $("s-reply").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("s-reply-text").value.trim();
    if (!text) return;
    var id = "staff-" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
    state.socket.send(JSON.stringify({ type: "say", session_id: state.watching, client_msg_id: id, text: text }));
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
    api("GET", "/api/sessions/" + state.watching).then(function (data) {
      var blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
      var a = el("a", { href: URL.createObjectURL(blob), download: "session-" + state.watching + ".json" });
      document.body.appendChild(a); a.click(); a.remove();
    });
  });

  // ---- escalations, errors, deliveries -------------------------------------
  async function loadEscalations() {
    var data = await api("GET", "/api/escalations");
    $("escalations-body").replaceChildren.apply($("escalations-body"), data.sessions.map(function (s) {
      var priority = el("select", { class: "form-select form-select-sm w-auto", "aria-label": "Priority", disabled: can("admin,developer,agent") ? null : "disabled" });
      ["low", "normal", "high", "urgent"].forEach(function (p) { var o = el("option", { text: p }); o.selected = p === s.priority; priority.appendChild(o); });
      priority.addEventListener("change", function () { api("PUT", "/api/sessions/" + s.id, { priority: priority.value }).catch(function (e) { toast(e.message, "danger"); }); });
      var claim = el("button", { class: "btn btn-sm btn-outline-primary", type: "button", text: "Claim" });
      claim.hidden = !can("admin,developer,agent");
      claim.addEventListener("click", function () { api("POST", "/api/sessions/" + s.id + "/claim").then(loadEscalations).catch(function (e) { toast(e.message, "danger"); }); });
      return el("tr", {}, el("td", {}, el("a", { href: "#/sessions/" + s.id, text: customerName(s) })), el("td", { text: when(s.escalated_at) }),
        el("td", {}, priority), el("td", { text: s.assignee || "—" }), el("td", {}, claim));
    }));
    if (!data.sessions.length) $("escalations-body").appendChild(el("tr", {}, el("td", { colspan: "5", class: "text-body-secondary", text: "Nothing escalated." })));
  }
  async function loadErrors() {
    var data = await api("GET", "/api/errors?per_page=100");
    $("errors-body").replaceChildren.apply($("errors-body"), data.errors.map(function (e) {
      return el("tr", {}, el("td", { class: "small", text: when(e.created_at) }), el("td", { text: e.source }), el("td", { text: e.workflow || "" }),
        el("td", { text: e.message }), el("td", {}, e.session_id ? el("a", { href: "#/sessions/" + e.session_id, text: "open" }) : null));
    }));
  }
  $("d-status").addEventListener("change", loadDeliveries);
  async function loadDeliveries() {
    var status = $("d-status").value;
    var data = await api("GET", "/api/deliveries?per_page=100" + (status ? "&status=" + status : ""));
    $("deliveries-body").replaceChildren.apply($("deliveries-body"), data.deliveries.map(function (d) {
      var retry = el("button", { class: "btn btn-sm btn-outline-primary", type: "button", text: "Retry" });
      retry.hidden = !can("admin,developer") || ["dead", "failed", "skipped"].indexOf(d.status) < 0;
      retry.addEventListener("click", function () { api("POST", "/api/deliveries/" + d.id + "/retry").then(function () { toast("Queued again", "success"); loadDeliveries(); }).catch(function (e) { toast(e.message, "danger"); }); });
      return el("tr", {}, el("td", { class: "small", text: when(d.created_at) }), el("td", { text: d.event_type }), el("td", {}, badge(d.status === "delivered" ? "passed" : d.status === "dead" ? "issue" : "unchecked")),
        el("td", { text: d.attempts }), el("td", { class: "small", text: d.last_error || "" }), el("td", {}, retry));
    }));
    $("deliveries-body").querySelectorAll(".badge").forEach(function (b, i) { b.textContent = data.deliveries[i].status; });
  }

  // ---- users and keys (admin) ----------------------------------------------
  async function loadUsers() {
    var users = await api("GET", "/api/users");
    $("users-body").replaceChildren.apply($("users-body"), users.users.map(function (u) {
      var role = el("select", { class: "form-select form-select-sm w-auto", "aria-label": "Role of " + u.username });
      ["admin", "developer", "qa", "agent"].forEach(function (r) { var o = el("option", { text: r }); o.selected = r === u.role; role.appendChild(o); });
      role.addEventListener("change", function () { api("PUT", "/api/users/" + u.id, { role: role.value }).then(loadUsers).catch(function (e) { toast(e.message, "danger"); loadUsers(); }); });
      var active = el("input", { class: "form-check-input", type: "checkbox", role: "switch", "aria-label": "Active: " + u.username });
      active.checked = !u.disabled;
      active.addEventListener("change", function () { api("PUT", "/api/users/" + u.id, { disabled: !active.checked }).then(loadUsers).catch(function (e) { toast(e.message, "danger"); loadUsers(); }); });
      var reset = el("button", { class: "btn btn-sm btn-outline-secondary", type: "button", text: "Reset password" });
      reset.addEventListener("click", function () {
        var password = prompt("New password for " + u.username + " (8+ characters)");
        if (password) api("PUT", "/api/users/" + u.id, { password: password }).then(function () { toast("Password changed", "success"); }).catch(function (e) { toast(e.message, "danger"); });
      });
      return el("tr", {}, el("td", { text: u.username }), el("td", {}, role), el("td", { class: "small", text: when(u.last_login_at) }),
        el("td", {}, el("div", { class: "form-check form-switch" }, active)), el("td", {}, reset));
    }));
    var keys = await api("GET", "/api/api-keys");
    $("keys-body").replaceChildren.apply($("keys-body"), keys.api_keys.map(function (k) {
      var revoke = el("button", { class: "btn btn-sm btn-outline-danger", type: "button", text: k.revoked_at ? "Revoked" : "Revoke", disabled: k.revoked_at ? "disabled" : null });
      revoke.addEventListener("click", async function () {
        if (await confirmAction("Revoke " + k.name + "?", "Clients using this key stop working at once.")) api("DELETE", "/api/api-keys/" + k.id).then(loadUsers);
      });
      return el("tr", {}, el("td", { text: k.name }), el("td", {}, el("code", { text: k.prefix + "…" })), el("td", { class: "small", text: when(k.created_at) }),
        el("td", { class: "small", text: when(k.last_used_at) }), el("td", {}, revoke));
    }));
  }
  $("user-form").addEventListener("submit", function (e) {
    e.preventDefault();
    api("POST", "/api/users", { username: $("u-name").value, password: $("u-password").value, role: $("u-role").value })
      .then(function () { $("user-form").reset(); toast("User added", "success"); loadUsers(); })
      .catch(function (err) { toast(err.message, "danger"); });
  });
  $("key-form").addEventListener("submit", function (e) {
    e.preventDefault();
    api("POST", "/api/api-keys", { name: $("k-name").value }).then(function (k) {
      $("key-form").reset();
      var box = $("new-key");
      box.replaceChildren(el("div", { text: "Copy this key now; it is not shown again:" }), el("code", { class: "user-select-all", id: "new-key-value", text: k.key }));
      box.classList.remove("d-none");
      loadUsers();
    }).catch(function (err) { toast(err.message, "danger"); });
  });

  // ---- settings (admin): completion rules and sites -----------------------
  async function loadSettings() {
    var rules = await api("GET", "/api/completion-rules");
    $("booking-url").textContent = rules.booking_url;
    $("rules-body").replaceChildren.apply($("rules-body"), rules.rules.map(function (r) {
      var on = el("input", { class: "form-check-input", type: "checkbox", role: "switch", "aria-label": "Enable " + r.name });
      on.checked = r.enabled;
      on.addEventListener("change", function () { api("PUT", "/api/completion-rules/" + r.id, { enabled: on.checked }).then(loadSettings).catch(function (e) { toast(e.message, "danger"); }); });
      var pattern = el("input", { class: "form-control form-control-sm", value: r.pattern, "aria-label": "Pattern of " + r.name });
      pattern.addEventListener("change", function () {
        api("PUT", "/api/completion-rules/" + r.id, { pattern: pattern.value }).then(function () { toast("Rule saved", "success"); loadSettings(); })
          .catch(function (e) { toast(e.message, "danger"); pattern.value = r.pattern; });
      });
      var remove = el("button", { class: "btn btn-sm btn-outline-danger", type: "button", text: "Delete" });
      remove.addEventListener("click", async function () {
        if (await confirmAction("Delete rule " + r.name + "?", "Conversations it completed stay complete.")) api("DELETE", "/api/completion-rules/" + r.id).then(loadSettings);
      });
      return el("tr", { "data-rule": r.name }, el("td", { text: r.name }), el("td", { text: r.kind }), el("td", {}, pattern), el("td", { text: r.fire_count }),
        el("td", { class: "small", text: when(r.last_fired_at) }), el("td", {}, el("div", { class: "form-check form-switch" }, on)), el("td", {}, remove));
    }));
    var sites = await api("GET", "/api/sites");
    $("sites-body").replaceChildren.apply($("sites-body"), sites.sites.map(function (site) {
      var field = function (name, value, label) {
        var input = el("input", { class: "form-control form-control-sm", value: value || "", "aria-label": label + " of " + site.key });
        input.addEventListener("change", function () {
          var body = {}; body[name] = name === "allowed_origins" ? input.value.split(",").map(function (o) { return o.trim(); }).filter(Boolean) : (input.value || null);
          api("PUT", "/api/sites/" + encodeURIComponent(site.key), body).then(function () { toast("Site saved", "success"); }).catch(function (e) { toast(e.message, "danger"); loadSettings(); });
        });
        return input;
      };
      var position = el("select", { class: "form-select form-select-sm", "aria-label": "Position of " + site.key });
      ["right", "left"].forEach(function (p) { var o = el("option", { text: p }); o.selected = p === site.position; position.appendChild(o); });
      position.addEventListener("change", function () { api("PUT", "/api/sites/" + encodeURIComponent(site.key), { position: position.value }).catch(function (e) { toast(e.message, "danger"); }); });
      var prechat = el("input", { class: "form-check-input", type: "checkbox", "aria-label": "Pre-chat form on " + site.key });
      prechat.checked = site.prechat_form;
      prechat.addEventListener("change", function () { api("PUT", "/api/sites/" + encodeURIComponent(site.key), { prechat_form: prechat.checked }).catch(function (e) { toast(e.message, "danger"); }); });
      var remove = el("button", { class: "btn btn-sm btn-outline-danger", type: "button", text: "Delete", disabled: site.key === "default" ? "disabled" : null });
      remove.addEventListener("click", async function () {
        if (await confirmAction("Delete site " + site.key + "?", "Widgets using this key stop working.")) api("DELETE", "/api/sites/" + encodeURIComponent(site.key)).then(loadSettings);
      });
      return el("tr", {}, el("td", {}, el("code", { text: site.key })), el("td", {}, field("name", site.name, "Name")),
        el("td", {}, field("allowed_origins", site.allowed_origins.join(", "), "Origins")), el("td", {}, field("greeting", site.greeting, "Greeting")),
        el("td", {}, field("color", site.color, "Colour")), el("td", {}, position), el("td", {}, prechat), el("td", {}, remove));
    }));
  }
  $("rule-form").addEventListener("submit", function (e) {
    e.preventDefault();
    api("POST", "/api/completion-rules", { name: $("r-name").value, kind: $("r-kind").value, pattern: $("r-pattern").value })
      .then(function () { $("rule-form").reset(); toast("Rule added", "success"); loadSettings(); })
      .catch(function (err) { toast(err.message, "danger"); });
  });
  $("rule-test").addEventListener("submit", function (e) {
    e.preventDefault();
    api("POST", "/api/completion-rules/test", { text: $("r-test-text").value }).then(function (r) {
      $("r-test-result").textContent = r.rule ? "fires: " + r.rule : "no rule fires";
    });
  });
  $("site-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var origins = $("st-origins").value.split(",").map(function (o) { return o.trim(); }).filter(Boolean);
    api("POST", "/api/sites", { key: $("st-key").value, name: $("st-name").value, allowed_origins: origins })
      .then(function () { $("site-form").reset(); toast("Site added", "success"); loadSettings(); })
      .catch(function (err) { toast(err.message, "danger"); });
  });

  // ---- Test AI: the widget's chat frame in a draggable, resizable window ----
  $("test-ai-open").addEventListener("click", function () {
    var frame = $("test-ai-frame");
    if (!frame.src) frame.src = "/widget/frame.html?site=default&channel=test";
    $("test-ai").classList.remove("d-none");
  });
  $("test-ai-close").addEventListener("click", function () { $("test-ai").classList.add("d-none"); });
  window.addEventListener("message", function (e) {
    if (e.origin === location.origin && e.data && e.data.type === "chathub:close") $("test-ai").classList.add("d-none");
  });
  (function draggable() {
    var panel = $("test-ai"), head = $("test-ai-head"), start = null;
    head.addEventListener("pointerdown", function (e) {
      if (e.target.tagName === "BUTTON") return;
      var rect = panel.getBoundingClientRect();
      start = { x: e.clientX - rect.left, y: e.clientY - rect.top };
      head.setPointerCapture(e.pointerId);
    });
    head.addEventListener("pointermove", function (e) {
      if (!start) return;
      panel.style.left = Math.max(0, Math.min(innerWidth - 80, e.clientX - start.x)) + "px";
      panel.style.top = Math.max(0, Math.min(innerHeight - 40, e.clientY - start.y)) + "px";
      panel.style.right = "auto"; panel.style.bottom = "auto";
    });
    head.addEventListener("pointerup", function () { start = null; });
  })();

  // ---- start ---------------------------------------------------------------
  fetch("/api/auth/me", { credentials: "same-origin" })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (me) { if (me) signedIn(me); else showLogin(); })
    .catch(showLogin);
})();
