/* The session view's workflow card (staff who may act): resolve or reopen,
 * priority, and the assignee picked from everyone who may take over. */
import { $, api, can, el, state, toast } from "./core.js";

var staff = null;

export async function renderWorkflow(s) {
  if (!can("admin,developer,agent")) return;
  $("s-resolve").textContent = s.status === "resolved" ? "Reopen" : "Resolve";
  $("s-priority").value = s.priority;
  if (!staff) {
    try { staff = (await api("GET", "/api/staff")).staff; } catch (e) { staff = []; }
    staff.forEach(function (u) { $("s-assignee").appendChild(el("option", { value: u.id, text: u.display_name })); });
  }
  $("s-assignee").value = s.assignee_id || "";
}
async function change(fields) {
  try {
    var s = await api("PUT", "/api/sessions/" + state.watching, fields);
    state.session = s;
    renderWorkflow(s);
    toast("Saved", "success");
  } catch (err) { toast(err.message, "danger"); }
}
$("s-resolve").addEventListener("click", function () {
  change({ status: state.session && state.session.status === "resolved" ? "active" : "resolved" });
});
$("s-priority").addEventListener("change", function () { change({ priority: $("s-priority").value }); });
$("s-assignee").addEventListener("change", function () { change({ assignee_id: $("s-assignee").value || null }); });
