/* Attachments in the dashboard (SPEC §12): files shown in the transcript
 * (images as bounded thumbnails, anything else as a download link; the
 * staff cookie authorises both) and files added to the reply box (the
 * paperclip, drag and drop, or paste), uploaded with a progress chip and
 * sent with the next reply. */
import { $, el, state } from "./core.js";

function size(bytes) {
  return bytes < 1024 ? bytes + " B" : bytes < 1048576 ? Math.round(bytes / 1024) + " KB" : (bytes / 1048576).toFixed(1) + " MB";
}

/** The nodes showing a message's attachments. */
export function fileNodes(files) {
  return (files || []).map(function (a) {
    if (/^image\//.test(a.content_type)) {
      return el("a", { class: "file", href: a.url, target: "_blank", rel: "noopener", "aria-label": "Open " + a.name },
        el("img", { class: "thumb", src: a.url, alt: a.name, loading: "lazy" }));
    }
    return el("a", { class: "file", href: a.url, download: a.name }, el("i", { class: "fa-solid fa-file-arrow-down me-1", "aria-hidden": "true" }),
      a.name + " (" + size(a.size) + ")");
  });
}

// The reply box's files: each chip is uploading, failed, or ready (an id).
var pending = [];
var ERRORS = { 413: "too large", 415: "type not allowed", 429: "too many uploads, try later" };

function upload(file) {
  var item = { file: file, attachment: null, chip: null };
  var label = el("span", { text: file.name + " …" });
  var remove = el("button", { type: "button", class: "btn-close btn-sm ms-1", "aria-label": "Remove " + file.name,
    onclick: function () { pending = pending.filter(function (p) { return p !== item; }); item.chip.remove(); } });
  item.chip = el("span", { class: "badge rounded-pill text-bg-light border file-chip", role: "status" }, label, remove);
  $("s-files").appendChild(item.chip);
  pending.push(item);
  var form = new FormData();
  form.append("file", file, file.name);
  var xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/attachments");
  xhr.setRequestHeader("X-CSRF-Token", state.csrf);
  xhr.upload.onprogress = function (e) {
    if (e.lengthComputable) label.textContent = file.name + " " + Math.round(100 * e.loaded / e.total) + "%";
  };
  xhr.onload = function () {
    if (xhr.status === 201) {
      item.attachment = JSON.parse(xhr.responseText).attachment;
      label.textContent = item.attachment.name + " (" + size(item.attachment.size) + ")";
      item.chip.setAttribute("data-ready", "true");
    } else {
      label.textContent = file.name + ": " + (ERRORS[xhr.status] || "upload failed");
      item.chip.classList.replace("text-bg-light", "text-bg-danger");
    }
  };
  xhr.onerror = function () { label.textContent = file.name + ": upload failed"; };
  xhr.send(form);
}
function uploadAll(files) { Array.prototype.forEach.call(files || [], upload); }

/** The ids of the files ready to go with the reply (and clears them). */
export function takeReadyFiles() {
  var ready = pending.filter(function (p) { return p.attachment; });
  pending = pending.filter(function (p) { return !p.attachment; });
  ready.forEach(function (p) { p.chip.remove(); });
  return ready.map(function (p) { return p.attachment.id; });
}
/** Forgets the reply box's files (another session opened). */
export function clearFiles() {
  pending = [];
  $("s-files").replaceChildren();
}

$("s-attach").addEventListener("click", function () { $("s-file").click(); });
$("s-file").addEventListener("change", function () { uploadAll($("s-file").files); $("s-file").value = ""; });
$("s-reply-text").addEventListener("paste", function (e) {
  var files = e.clipboardData && e.clipboardData.files;
  if (files && files.length) { e.preventDefault(); uploadAll(files); }
});
$("s-reply").addEventListener("dragover", function (e) {
  if (e.dataTransfer && Array.prototype.indexOf.call(e.dataTransfer.types, "Files") >= 0) e.preventDefault();
});
$("s-reply").addEventListener("drop", function (e) {
  if (e.dataTransfer && e.dataTransfer.files.length) { e.preventDefault(); uploadAll(e.dataTransfer.files); }
});
