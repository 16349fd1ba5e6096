/* The staff dashboard's entry point. Vanilla JS modules over the staff API
 * (docs/api.md) and the dashboard socket (docs/protocol.md); no build step.
 * Every piece of chat text is put into the page with textContent, never as
 * HTML. One module per screen or concern:
 *   core      state, element building, toasts, roles, the API client
 *   hash      the location hash and the filter form
 *   router    which screen shows; login   signing in and out
 *   socket    the dashboard socket;  theme  light/dark
 *   sessions  the list;  stats  cards and charts;  session  one session
 *   notes     private notes;  canned  canned responses (reply box, settings)
 *   emails    a session's emails and "Email the lead";  templates  email templates
 *   alerts    tab title count, sound and desktop notifications
 *   workflow  resolve/reopen, priority and assignee of one session
 *   queues    escalations, errors, deliveries;  users;  settings;  testai
 *   files     attachments in the transcript and the reply box
 *   aihealth  the AI-health card, its alerts and their settings
 *   replays   replays against today's agent, with the turn-by-turn diff
 *   call      a video call with the visitor (WebRTC; signaling over the socket) */
import { hooks } from "./core.js";
import "./theme.js";
import "./testai.js";
import { showLogin, signedIn } from "./login.js";

hooks.signedOut = showLogin;

fetch("/api/auth/me", { credentials: "same-origin" })
  .then(function (r) { return r.ok ? r.json() : null; })
  .then(function (me) { if (me) signedIn(me); else showLogin(); })
  .catch(showLogin);
