//! Attachments (SPEC §12) through the real server, real sockets and real
//! stores: a visitor uploads with their token and sends the file in a
//! message; staff upload and send one back; each side reads what it may and
//! nobody else reads anything (404). The refusals: too large (413), a type
//! the bytes do not back up (415, whatever the name or Content-Type say), a
//! path in the name, another conversation's file, the upload rate. Deleting
//! a session deletes its files; an upload never sent goes after its time.
//! The object store is the local directory here and a real S3-compatible
//! server (moto) in the last test.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::ws_client::Visitor;

/// A real 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf,
    0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60,
    0x82,
];
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n";

fn form(name: &str, bytes: &[u8], content_type: &str) -> Form {
    Form::new().part("file", Part::bytes(bytes.to_vec()).file_name(name.to_owned()).mime_str(content_type).unwrap())
}

/// Uploads as a visitor (their conversation token).
async fn visitor_upload(base: &str, token: &str, name: &str, bytes: &[u8], content_type: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/attachments"))
        .bearer_auth(token)
        .multipart(form(name, bytes, content_type))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn staff_upload(staff: &StaffClient, name: &str, bytes: &[u8], content_type: &str) -> (u16, Value) {
    let response = staff.request("POST", "/api/attachments").multipart(form(name, bytes, content_type)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// GET as a visitor (`Some(token)`) or with no credential at all.
async fn fetch(base: &str, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{base}{url}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn stored_file(data_dir: &std::path::Path, id: &str) -> PathBuf {
    data_dir.join("attachments").join(id)
}

async fn attachment_rows(app: &TestApp) -> i64 {
    app.db().await.query_one("SELECT count(*) FROM attachments", &[]).await.unwrap().get(0)
}

/// Sends a message frame and returns the first ack or error answering it.
async fn send_and_answer(socket: &mut Visitor, frame: Value) -> Value {
    let id = frame["client_msg_id"].clone();
    socket.send(frame).await;
    loop {
        let answer = socket.recv().await;
        if matches!(answer["type"].as_str(), Some("ack" | "error")) && answer["client_msg_id"] == id {
            return answer;
        }
    }
}

#[tokio::test]
async fn files_travel_both_ways_and_only_the_conversation_and_staff_read_them() {
    let data_dir = world_readable_tempdir();
    let dir = data_dir.clone();
    let app = TestApp::spawn_with(move |c| c.data_dir = dir).await;
    let agent = app.staff("ana", "agent").await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    let token = visitor.token.clone().unwrap();

    // Upload before anything is said: the conversation is not stored yet.
    let (status, body) = visitor_upload(&app.address, &token, "../../smile.png", PNG, "image/png").await;
    assert_eq!(status, 201, "{body}");
    let file = body["attachment"].clone();
    let id = file["id"].as_str().unwrap().to_owned();
    assert_eq!(file, json!({"id": id, "name": "smile.png", "content_type": "image/png", "size": PNG.len(), "url": format!("/api/attachments/{id}")}));
    assert!(stored_file(&data_dir, &id).is_file(), "the bytes are in the local store");

    // A message carrying only the file (empty text) is acked and fanned out.
    let ack = send_and_answer(&mut visitor, json!({"type": "message", "client_msg_id": "m1", "text": "", "attachments": [id]})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let session = visitor.session_id.clone().unwrap();
    // The resend stores once.
    let again = send_and_answer(&mut visitor, json!({"type": "message", "client_msg_id": "m1", "text": "", "attachments": [id]})).await;
    assert_eq!((again["type"].as_str(), &again["seq"]), (Some("ack"), &ack["seq"]));
    let detail = agent.get(&format!("/api/sessions/{session}")).await.1;
    let carrying: Vec<&Value> = detail["messages"].as_array().unwrap().iter().filter(|m| m["attachments"].is_array()).collect();
    assert_eq!(carrying.len(), 1, "{detail}");
    assert_eq!(carrying[0]["attachments"], json!([file]));
    assert_eq!(carrying[0]["text"], "");

    // The visitor and staff read it: inline, never sniffed, sandboxed.
    let own = fetch(&app.address, &format!("/api/attachments/{id}"), Some(&token)).await;
    assert_eq!(own.status(), 200);
    let headers = own.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("sandbox"));
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("inline"));
    assert_eq!(own.bytes().await.unwrap().as_ref(), PNG);
    assert_eq!(agent.request("GET", &format!("/api/attachments/{id}")).send().await.unwrap().status(), 200);
    // Anyone else: another conversation, a made-up token, nobody, an unknown id.
    let mut stranger = Visitor::connect(app.port).await;
    stranger.hello().await;
    let other_token = stranger.token.clone().unwrap();
    for token in [Some(other_token.as_str()), Some("not-a-token"), None] {
        let response = fetch(&app.address, &format!("/api/attachments/{id}"), token).await;
        assert_eq!(response.status(), 404, "{token:?}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    }
    assert_eq!(fetch(&app.address, &format!("/api/attachments/{}", uuid::Uuid::new_v4()), Some(&token)).await.status(), 404);
    // Nor can another conversation send it as its own.
    let theirs = send_and_answer(&mut stranger, json!({"type": "message", "client_msg_id": "x", "text": "mine now", "attachments": [id]})).await;
    assert_eq!((theirs["type"].as_str(), theirs["code"].as_str()), (Some("error"), Some("invalid_attachment")), "{theirs}");

    // Staff send a PDF back from the dashboard: a download for the visitor.
    let (status, body) = staff_upload(&agent, "C:\\fakepath\\quote.pdf", PDF, "application/pdf").await;
    assert_eq!(status, 201, "{body}");
    let pdf = body["attachment"].clone();
    let pdf_id = pdf["id"].as_str().unwrap().to_owned();
    assert_eq!(pdf["name"], "quote.pdf");
    assert_eq!(fetch(&app.address, &format!("/api/attachments/{pdf_id}"), Some(&token)).await.status(), 404, "not the visitor's until sent");
    // Staff may not send a visitor's upload from another conversation, nor a visitor a staff upload.
    let (_, stray) = visitor_upload(&app.address, &other_token, "s.png", PNG, "image/png").await;
    let mut dashboard = Visitor::dashboard(app.port, &agent.cookie, &agent.origin()).await;
    let frame = json!({"type": "say", "session_id": session, "client_msg_id": "s0", "text": "", "attachments": [stray["attachment"]["id"]]});
    let refused = send_and_answer(&mut dashboard, frame).await;
    assert_eq!(refused["code"], "invalid_attachment", "{refused}");
    let refused = send_and_answer(&mut visitor, json!({"type": "message", "client_msg_id": "m2", "attachments": [pdf_id]})).await;
    assert_eq!(refused["code"], "invalid_attachment", "{refused}");
    let frame = json!({"type": "say", "session_id": session, "client_msg_id": "s1", "text": "Here is your quote", "attachments": [pdf_id]});
    assert_eq!(send_and_answer(&mut dashboard, frame).await["type"], "ack");
    let message = visitor.next_message().await;
    assert_eq!((message["role"].as_str(), message["text"].as_str()), (Some("agent"), Some("Here is your quote")));
    assert_eq!(message["attachments"], json!([pdf]));
    let download = fetch(&app.address, &format!("/api/attachments/{pdf_id}"), Some(&token)).await;
    assert_eq!(download.status(), 200);
    let disposition = download.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment") && disposition.contains("quote.pdf"), "{disposition}");
    assert_eq!(download.bytes().await.unwrap().as_ref(), PDF);
    // The visitor's transcript (a resume) carries both files.
    let mut resumed = Visitor::connect(app.port).await;
    let welcome = resumed.resume(&token, 0).await;
    let files: Vec<&Value> = welcome["messages"].as_array().unwrap().iter().filter_map(|m| m["attachments"].as_array()).flatten().collect();
    assert_eq!(files, vec![&file, &pdf]);

    // The JSON export carries the attachment objects; the CSV names and links them.
    let export = agent.get("/api/sessions/export?format=json&include=messages").await.1;
    let exported: Vec<&Value> = export[0]["messages"].as_array().unwrap().iter().filter_map(|m| m["attachments"].as_array()).flatten().collect();
    assert_eq!(exported, vec![&file, &pdf]);
    let csv = agent.request("GET", "/api/sessions/export?format=csv&include=messages").send().await.unwrap().text().await.unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",attachments"), "{csv}");
    assert!(csv.contains(&format!("smile.png <http://127.0.0.1:8080/api/attachments/{id}>")), "{csv}");

    // Deleting the session deletes its files, rows and bytes.
    let admin = app.admin().await;
    assert_eq!(admin.call("DELETE", &format!("/api/sessions/{session}"), None).await.0, 204);
    assert!(!stored_file(&data_dir, &id).exists() && !stored_file(&data_dir, &pdf_id).exists());
    assert_eq!(agent.request("GET", &format!("/api/attachments/{id}")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn uploads_past_the_limits_are_refused_and_store_nothing() {
    let data_dir = world_readable_tempdir();
    let dir = data_dir.clone();
    let app = TestApp::spawn_with(move |c| {
        c.data_dir = dir;
        c.attachments.max_upload_bytes = 1024;
        c.attachments.per_conversation_per_hour = 6;
    })
    .await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    let token = visitor.token.clone().unwrap();
    let files_stored = || std::fs::read_dir(data_dir.join("attachments")).map(|d| d.count()).unwrap_or(0);

    // Too large: 413, whatever it is.
    let big: Vec<u8> = PNG.iter().copied().chain(std::iter::repeat_n(0u8, 2048)).collect();
    let (status, body) = visitor_upload(&app.address, &token, "big.png", &big, "image/png").await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{body}");
    // An executable called a PNG, sent as image/png: 415.
    let exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00";
    let (status, body) = visitor_upload(&app.address, &token, "holiday.png", exe, "image/png").await;
    assert_eq!((status, body["error"]["code"].as_str()), (415, Some("unsupported_file_type")), "{body}");
    // An HTML page is text: stored, but only ever served as text/plain.
    let (status, body) = visitor_upload(&app.address, &token, "page.html", b"<script>alert(1)</script>", "text/html").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["attachment"]["content_type"], "text/plain");
    let served = fetch(&app.address, body["attachment"]["url"].as_str().unwrap(), Some(&token)).await;
    assert_eq!(served.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(served.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    // Not multipart, no file field, an empty file: 400.
    let raw = reqwest::Client::new().post(app.url("/api/attachments")).bearer_auth(&token).body(PNG.to_vec()).send().await.unwrap();
    assert_eq!(raw.status(), 400);
    let no_file = Form::new().text("note", "hi");
    let response = reqwest::Client::new().post(app.url("/api/attachments")).bearer_auth(&token).multipart(no_file).send().await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "missing_file");
    // Without a credential, or with an unknown token: 401.
    let anonymous = reqwest::Client::new().post(app.url("/api/attachments")).multipart(form("a.png", PNG, "image/png")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(visitor_upload(&app.address, "no-such-token", "a.png", PNG, "image/png").await.0, 401);
    // Staff need the CSRF token like any state change.
    let agent = app.staff("ana", "agent").await;
    let forged = app.http.post(app.url("/api/attachments")).header("cookie", &agent.cookie).multipart(form("a.png", PNG, "image/png")).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(attachment_rows(&app).await, 1, "only the text file");
    assert_eq!(files_stored(), 1);

    // Six uploads an hour per conversation: the five refused or stored above count too.
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(visitor_upload(&app.address, &token, "a.png", PNG, "image/png").await.0);
    }
    assert_eq!(statuses, vec![201, 429]);
    let mut fresh = Visitor::connect(app.port).await;
    fresh.hello().await;
    assert_eq!(visitor_upload(&app.address, fresh.token.as_deref().unwrap(), "a.png", PNG, "image/png").await.0, 201);
}

#[tokio::test]
async fn uploads_in_flight_are_bounded_and_the_rest_are_told_to_retry() {
    let app = TestApp::spawn().await;
    let agent = app.staff("ana", "agent").await;
    // Four more uploads than the bound, each starting its file and never
    // finishing it: the bound's worth are held, the rest turned away at once.
    let bound = chathub::state::MAX_UPLOADS_IN_FLIGHT;
    let boundary = "slowboundary";
    let mut held = Vec::new();
    for _ in 0..bound + 4 {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        let head = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.png\"\r\nContent-Type: image/png\r\n\r\n");
        tx.send(Ok(head.into_bytes())).await.unwrap();
        let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) }));
        // Each on a new connection of its own (a pooled one the server has
        // closed cannot be retried with a streaming body).
        let request = reqwest::Client::new()
            .post(app.url("/api/attachments"))
            .header("cookie", &agent.cookie)
            .header("x-csrf-token", &agent.csrf)
            .header("origin", agent.origin())
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body);
        held.push((tx, tokio::spawn(request.send())));
    }
    let turned_away = eventually(Duration::from_secs(10), async || held.iter().filter(|(_, r)| r.is_finished()).count() == 4).await;
    assert!(turned_away, "four uploads past the bound are answered at once");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut pending = Vec::new();
    for (tx, request) in held {
        if request.is_finished() {
            let response = request.await.unwrap().unwrap();
            assert_eq!(response.status(), 503);
            assert!(response.headers().contains_key("retry-after"));
            assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "busy");
        } else {
            pending.push((tx, request));
        }
    }
    assert_eq!(pending.len(), bound);
    // So is any other upload meanwhile; nothing is stored.
    assert_eq!(staff_upload(&agent, "a.png", PNG, "image/png").await.0, 503);
    assert_eq!(attachment_rows(&app).await, 0, "a refused upload stores nothing");
    // The stalled ones go away: uploads are taken again.
    for (tx, request) in pending {
        drop(tx);
        let _ = request.await;
    }
    assert_eq!(staff_upload(&agent, "a.png", PNG, "image/png").await.0, 201);
}

#[tokio::test]
async fn an_upload_never_sent_is_removed_after_its_time() {
    let data_dir = world_readable_tempdir();
    let dir = data_dir.clone();
    let app = TestApp::spawn_with(move |c| {
        c.data_dir = dir;
        c.attachments.unsent_ttl_secs = 1;
    })
    .await;
    let mut visitor = Visitor::connect(app.port).await;
    visitor.hello().await;
    let token = visitor.token.clone().unwrap();
    let (_, kept) = visitor_upload(&app.address, &token, "kept.png", PNG, "image/png").await;
    let kept_id = kept["attachment"]["id"].as_str().unwrap().to_owned();
    let ack = send_and_answer(&mut visitor, json!({"type": "message", "client_msg_id": "k", "text": "see", "attachments": [kept_id]})).await;
    assert_eq!(ack["type"], "ack");
    let (_, unsent) = visitor_upload(&app.address, &token, "unsent.png", PNG, "image/png").await;
    let unsent_id = unsent["attachment"]["id"].as_str().unwrap().to_owned();
    let gone = eventually(Duration::from_secs(10), async || !stored_file(&data_dir, &unsent_id).exists()).await;
    assert!(gone, "the unsent upload's bytes are deleted");
    assert_eq!(fetch(&app.address, &format!("/api/attachments/{unsent_id}"), Some(&token)).await.status(), 404);
    assert!(stored_file(&data_dir, &kept_id).exists(), "a sent file stays");
    assert_eq!(fetch(&app.address, &format!("/api/attachments/{kept_id}"), Some(&token)).await.status(), 200);
}

/// A local S3-compatible server: moto's, as the tests start PostgreSQL.
struct S3Server {
    child: std::process::Child,
    endpoint: String,
}

impl S3Server {
    async fn start(bucket: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server (pip install \"moto[server]\") is needed for the S3 test");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let up = eventually(Duration::from_secs(30), async || http.put(format!("{endpoint}/{bucket}")).send().await.is_ok_and(|r| r.status().is_success())).await;
        assert!(up, "moto_server did not start");
        Self { child, endpoint }
    }

    /// The keys under `prefix` in `bucket` (ListObjectsV2).
    async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let xml = reqwest::get(format!("{}/{bucket}?list-type=2&prefix={prefix}", self.endpoint)).await.unwrap().text().await.unwrap();
        xml.split("<Key>").skip(1).filter_map(|k| k.split("</Key>").next()).map(str::to_owned).collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_object_store_can_be_an_s3_compatible_server() {
    let s3 = S3Server::start("chathub-files").await;
    let database_url = fresh_database().await;
    let server = ChildServer::start(&[
        ("DATABASE_URL", &database_url),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("ATTACHMENTS_URL", "s3://chathub-files/uploads"),
        ("AWS_ENDPOINT", &s3.endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test-secret"),
    ]);
    let base = server.url("");
    let mut visitor = Visitor::connect(server.port).await;
    visitor.hello().await;
    let token = visitor.token.clone().unwrap();
    let (status, body) = visitor_upload(&base, &token, "scan.pdf", PDF, "application/pdf").await;
    assert_eq!(status, 201, "{body}");
    let id = body["attachment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(s3.keys("chathub-files", "uploads/").await, vec![format!("uploads/{id}")]);
    let ack = send_and_answer(&mut visitor, json!({"type": "message", "client_msg_id": "m", "text": "my scan", "attachments": [id]})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let read = fetch(&base, &format!("/api/attachments/{id}"), Some(&token)).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.bytes().await.unwrap().as_ref(), PDF);

    let admin = staff_login(&base, &reqwest::Client::new(), "admin", ADMIN_PASSWORD).await;
    let session = visitor.session_id.clone().unwrap();
    assert_eq!(admin.call("DELETE", &format!("/api/sessions/{session}"), None).await.0, 204);
    assert!(s3.keys("chathub-files", "uploads/").await.is_empty(), "deleting the session deleted the object");
    assert!(server.terminate());
}

// ---- Messenger and WhatsApp ------------------------------------------------

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const META_SECRET: &str = "meta-app-secret";

async fn post_signed(app: &TestApp, path: &str, body: Value) -> u16 {
    let body = serde_json::to_vec(&body).unwrap();
    let signature = chathub::channels::sign(META_SECRET, &body);
    app.http.post(app.url(path)).header("content-type", "application/json").header("x-hub-signature-256", signature).body(body).send().await.unwrap().status().as_u16()
}

/// The requests the Graph API mock got on `path`.
async fn requests_to(graph: &MockServer, on: &str) -> Vec<wiremock::Request> {
    graph.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == on).collect()
}

/// A multipart body's part named `name`: its headers and content, as text.
fn part<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let start = body.find(&format!("name=\"{name}\""))?;
    let rest = &body[start..];
    Some(&rest[..rest.find("\r\n--").unwrap_or(rest.len())])
}

async fn visitor_files(app: &TestApp) -> Vec<(String, String, String)> {
    let rows = app
        .db()
        .await
        .query("SELECT a.name, a.content_type, m.text FROM attachments a JOIN messages m ON m.session_id = a.session_id AND m.seq = a.message_seq ORDER BY a.created_at", &[])
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

#[tokio::test]
async fn messenger_files_come_in_through_the_graph_api_and_staff_files_go_out_as_uploads() {
    let graph = MockServer::start().await;
    Mock::given(method("GET")).and(path("/v21.0/cdn/photo.jpg")).respond_with(ResponseTemplate::new(200).set_body_bytes(PNG)).mount(&graph).await;
    Mock::given(method("POST"))
        .and(path("/v21.0/me/messages"))
        .and(header("authorization", "Bearer page-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"recipient_id": "PSID-9", "message_id": "m.out"})))
        .mount(&graph)
        .await;
    let graph_url = format!("{}/v21.0", graph.uri());
    let photo_url = format!("{graph_url}/cdn/photo.jpg?oh=signed");
    let app = TestApp::spawn_with(move |c| {
        c.messenger_app_secret = Some(META_SECRET.into());
        c.messenger_page_token = Some("page-token".into());
        c.graph_api_url = graph_url;
        c.notifier_retry_base_ms = 50;
    })
    .await;
    let webhook = json!({"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": [
        {"sender": {"id": "PSID-9"}, "recipient": {"id": "PAGE"}, "timestamp": 1,
         "message": {"mid": "m.photo", "attachments": [{"type": "image", "payload": {"url": photo_url}}]}}
    ]}]});
    assert_eq!(post_signed(&app, "/webhooks/messenger", webhook).await, 200);
    // The image is ours now: sniffed (a PNG, whatever its name says), in the store, in the message.
    assert_eq!(visitor_files(&app).await, vec![("photo.jpg".into(), "image/png".into(), String::new())]);

    // Staff take over and send a PDF: one text message, then the file as a multipart upload.
    let agent = app.staff("ana", "agent").await;
    let session: String = app.db().await.query_one("SELECT id::text FROM sessions", &[]).await.unwrap().get(0);
    assert_eq!(agent.call("POST", &format!("/api/sessions/{session}/takeover"), Some(json!({"on": true}))).await.0, 200);
    let pdf_id = staff_upload(&agent, "quote.pdf", PDF, "application/pdf").await.1["attachment"]["id"].clone();
    let reply = json!({"client_msg_id": "r1", "text": "Your quote", "attachments": [pdf_id]});
    assert_eq!(agent.call("POST", &format!("/api/sessions/{session}/reply"), Some(reply)).await.0, 201);
    let sent_file = async || {
        requests_to(&graph, "/v21.0/me/messages").await.into_iter().find(|r| r.headers.get("content-type").is_some_and(|v| v.to_str().unwrap().starts_with("multipart/form-data")))
    };
    assert!(eventually(Duration::from_secs(10), async || sent_file().await.is_some()).await, "the file went out");
    let upload = sent_file().await.unwrap();
    let body = String::from_utf8_lossy(&upload.body).into_owned();
    assert!(part(&body, "recipient").unwrap().ends_with(r#"{"id":"PSID-9"}"#), "{body}");
    assert!(part(&body, "message").unwrap().ends_with(r#"{"attachment":{"payload":{"is_reusable":false},"type":"file"}}"#), "{body}");
    let filedata = part(&body, "filedata").unwrap();
    assert!(filedata.contains("filename=\"quote.pdf\"") && filedata.contains("Content-Type: application/pdf") && filedata.contains("%PDF-1.4"), "{filedata}");
    let texts: Vec<Value> = requests_to(&graph, "/v21.0/me/messages").await.iter().filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok()).collect();
    assert!(texts.iter().any(|b| b["message"] == json!({"text": "Your quote"})), "{texts:?}");
}

#[tokio::test]
async fn whatsapp_media_is_fetched_by_id_and_staff_files_are_uploaded_then_sent_by_id() {
    let graph = MockServer::start().await;
    let base = graph.uri();
    Mock::given(method("GET"))
        .and(path("/MEDIA-1"))
        .and(header("authorization", "Bearer wa-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp", "url": format!("{base}/download/MEDIA-1"), "mime_type": "application/pdf", "id": "MEDIA-1"})))
        .mount(&graph)
        .await;
    Mock::given(method("GET")).and(path("/download/MEDIA-1")).and(header("authorization", "Bearer wa-token")).respond_with(ResponseTemplate::new(200).set_body_bytes(PDF)).mount(&graph).await;
    Mock::given(method("GET"))
        .and(path("/MEDIA-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"url": format!("{base}/download/MEDIA-2"), "id": "MEDIA-2"})))
        .mount(&graph)
        .await;
    Mock::given(method("GET")).and(path("/download/MEDIA-2")).respond_with(ResponseTemplate::new(200).set_body_bytes(b"MZ\x90\x00 not a sticker".to_vec())).mount(&graph).await;
    Mock::given(method("POST")).and(path("/PNID/media")).respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "UP-1"}))).mount(&graph).await;
    Mock::given(method("POST"))
        .and(path("/PNID/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.out"}]})))
        .mount(&graph)
        .await;
    let app = TestApp::spawn_with(move |c| {
        c.whatsapp_app_secret = Some(META_SECRET.into());
        c.whatsapp_token = Some("wa-token".into());
        c.whatsapp_phone_number_id = Some("PNID".into());
        c.graph_api_url = base;
        c.notifier_retry_base_ms = 50;
    })
    .await;
    let webhook = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "PNID"},
        "contacts": [{"profile": {"name": "Grace"}, "wa_id": "447700900001"}],
        "messages": [
            {"from": "447700900001", "id": "wamid.doc", "timestamp": "1", "type": "document",
             "document": {"id": "MEDIA-1", "filename": "invoice.pdf", "mime_type": "application/pdf", "caption": "my invoice"}},
            {"from": "447700900001", "id": "wamid.sticker", "timestamp": "2", "type": "sticker", "sticker": {"id": "MEDIA-2", "mime_type": "image/webp"}}
        ]
    }}]}]});
    assert_eq!(post_signed(&app, "/webhooks/whatsapp", webhook).await, 200);
    assert_eq!(visitor_files(&app).await, vec![("invoice.pdf".into(), "application/pdf".into(), "my invoice".into())]);
    // A file whose bytes are no accepted type is named in the text, not stored.
    let db = app.db().await;
    let sticker: String = db.query_one("SELECT text FROM messages WHERE external_id = 'wamid.sticker'", &[]).await.unwrap().get(0);
    assert!(sticker.starts_with("[attachment: sticker (not received: the file is not one of the accepted types"), "{sticker}");

    let agent = app.staff("ana", "agent").await;
    let session: String = db.query_one("SELECT id::text FROM sessions", &[]).await.unwrap().get(0);
    assert_eq!(agent.call("POST", &format!("/api/sessions/{session}/takeover"), Some(json!({"on": true}))).await.0, 200);
    let image_id = staff_upload(&agent, "map.png", PNG, "image/png").await.1["attachment"]["id"].clone();
    let reply = json!({"client_msg_id": "r1", "text": "", "attachments": [image_id]});
    assert_eq!(agent.call("POST", &format!("/api/sessions/{session}/reply"), Some(reply)).await.0, 201);
    let image_message = async || {
        requests_to(&graph, "/PNID/messages").await.iter().filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok()).find(|b| b["type"] == "image")
    };
    assert!(eventually(Duration::from_secs(10), async || image_message().await.is_some()).await, "the image went out");
    assert_eq!(image_message().await.unwrap(), json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "447700900001", "type": "image", "image": {"id": "UP-1"}}));
    let uploads = requests_to(&graph, "/PNID/media").await;
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].headers["authorization"], "Bearer wa-token");
    let body = String::from_utf8_lossy(&uploads[0].body).into_owned();
    assert!(part(&body, "messaging_product").unwrap().ends_with("whatsapp"), "{body}");
    assert!(part(&body, "type").unwrap().ends_with("image/png"), "{body}");
    let file = part(&body, "file").unwrap();
    assert!(file.contains("filename=\"map.png\"") && file.contains("Content-Type: image/png"), "{file}");
}
