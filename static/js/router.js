/* Which screen the hash shows, and loading it. */
import { $, can, state } from "./core.js";
import { parseHash } from "./hash.js";
import { loadSessions } from "./sessions.js";
import { openSession, unwatch } from "./session.js";
import { loadDeliveries, loadErrors, loadEscalations } from "./queues.js";
import { loadUsers } from "./users.js";
import { loadSettings } from "./settings.js";
import { loadTemplates } from "./templates.js";
import { screenShown } from "./alerts.js";
import { loadReplays } from "./replays.js";

export function show(view) {
  if ($("view-" + view).classList.contains("d-none")) window.scrollTo({ top: 0, behavior: "instant" }); // another screen starts at its top
  document.querySelectorAll(".view").forEach(function (v) { v.classList.add("d-none"); });
  $("view-" + view).classList.remove("d-none");
  document.querySelectorAll("[data-nav]").forEach(function (a) {
    var active = a.getAttribute("data-nav") === view || (view === "session" && a.getAttribute("data-nav") === "sessions");
    a.classList.toggle("active", active);
    if (active) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
}
export function route() {
  if (!state.me) return;
  var r = parseHash();
  screenShown("#" + r.path);
  var m = r.path.match(/^\/sessions\/([0-9a-f-]{36})$/);
  if (state.watching && (!m || m[1] !== state.watching)) unwatch();
  if (m) { show("session"); openSession(m[1]); return; }
  if (r.path === "/escalations") { show("escalations"); loadEscalations(); return; }
  if (r.path === "/errors") { show("errors"); loadErrors(); return; }
  if (r.path === "/deliveries") { show("deliveries"); loadDeliveries(); return; }
  if (r.path === "/email-templates") { show("templates"); loadTemplates(); return; }
  var replay = r.path.match(/^\/replays(?:\/([0-9a-f-]{36}))?$/);
  if (replay) { show("replays"); loadReplays(replay[1]); return; }
  if (r.path === "/users" && can("admin")) { show("users"); loadUsers(); return; }
  if (r.path === "/settings" && can("admin")) { show("settings"); loadSettings(); return; }
  show("sessions");
  loadSessions(r.query);
}
window.addEventListener("hashchange", route);
