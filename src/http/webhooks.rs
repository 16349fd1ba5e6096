//! Meta webhooks: `GET/POST /webhooks/messenger` and `/webhooks/whatsapp`;
//! and Resend's email tracking, `POST /webhooks/resend` (below).
//! The POST is verified against `X-Hub-Signature-256` over the raw body
//! before anything is parsed; a bad or missing signature (or no app secret
//! configured) is a 403 and nothing is stored. Each message goes to the
//! conversation actor of its sender, deduplicated on its channel id, and the
//! answer is 200 only once every message is committed: if storing fails,
//! Meta's retry delivers it again and the dedupe keeps it single.

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::future::join_all;
use serde::Deserialize;

use super::ApiError;
use crate::actors::persistence::PersistError;
use crate::channels::{self, Inbound};
use crate::attachments::Upload;
use crate::domain::{Channel, Customer, MessageBody, MessageRole};
use crate::state::AppState;


#[derive(Deserialize)]
pub struct Subscribe {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

fn handshake(expected: Option<&str>, query: &Subscribe) -> Result<HttpResponse, ApiError> {
    if channels::verify_subscription(expected, query.mode.as_deref(), query.token.as_deref()) {
        Ok(HttpResponse::Ok().content_type("text/plain").body(query.challenge.clone().unwrap_or_default()))
    } else {
        Err(ApiError::Forbidden("verification failed"))
    }
}

pub async fn messenger_verify(query: web::Query<Subscribe>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    handshake(state.config.messenger_verify_token.as_deref(), &query)
}

pub async fn whatsapp_verify(query: web::Query<Subscribe>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    handshake(state.config.whatsapp_verify_token.as_deref(), &query)
}

pub async fn messenger_event(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let secret = state.config.messenger_app_secret.as_deref();
    receive(&req, &body, &state, secret, Channel::Messenger, channels::messenger::parse, channels::messenger::receipts).await
}

pub async fn whatsapp_event(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let secret = state.config.whatsapp_app_secret.as_deref();
    receive(&req, &body, &state, secret, Channel::Whatsapp, channels::whatsapp::parse, channels::whatsapp::receipts).await
}

async fn receive(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
    secret: Option<&str>,
    channel: Channel,
    parse: fn(&serde_json::Value) -> Result<Vec<Inbound>, &'static str>,
    receipts: fn(&serde_json::Value) -> Vec<channels::Receipt>,
) -> Result<HttpResponse, ApiError> {
    if body.len() > channels::MAX_WEBHOOK_BYTES {
        return Err(ApiError::PayloadTooLarge(channels::MAX_WEBHOOK_BYTES));
    }
    let header = req.headers().get("x-hub-signature-256").and_then(|h| h.to_str().ok());
    let Some(secret) = secret else {
        tracing::warn!(%channel, "a webhook arrived but its app secret is not configured; refused");
        return Err(ApiError::Forbidden("webhook signature cannot be checked"));
    };
    if !channels::verify_signature(secret, body, header) {
        metrics::counter!("chathub_webhook_rejected_total", "channel" => channel.as_str()).increment(1);
        return Err(ApiError::Forbidden("invalid X-Hub-Signature-256"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid("invalid_json", e.to_string()))?;
    let messages = parse(&value).map_err(|e| ApiError::invalid("invalid_payload", e))?;
    let max_chars = state.config.limits.max_message_chars;
    // Senders are stored side by side; each sender's messages one after
    // the other, in the order they were written.
    let stored = join_all(channels::by_sender_in_order(messages).into_iter().map(|batch| async move {
        for inbound in batch {
            store_inbound(state, channel, inbound, max_chars).await?;
        }
        Ok::<(), ApiError>(())
    }))
    .await;
    // Any failure: not 200, so Meta sends the whole batch again (deduplicated).
    stored.into_iter().collect::<Result<Vec<()>, ApiError>>()?;
    for receipt in receipts(&value) {
        apply_receipt(state, channel, receipt).await?;
    }
    metrics::counter!("chathub_webhook_events_total", "channel" => channel.as_str()).increment(1);
    Ok(HttpResponse::Ok().content_type("text/plain").body("EVENT_RECEIVED"))
}

/// Moves the customer's read position (and our reply's delivery status) as
/// the channel reports; watchers see the visitor's read. Statuses for
/// messages we do not know (sent before, or by another tool) change nothing.
async fn apply_receipt(state: &AppState, channel: Channel, receipt: channels::Receipt) -> Result<(), ApiError> {
    use crate::store::reads;
    let moved = match receipt {
        channels::Receipt::ReadUpTo { sender, watermark_ms } => reads::read_watermark(&state.db, channel.as_str(), &sender, watermark_ms).await?,
        channels::Receipt::Status { message_id, status } => {
            let Some(moved) = reads::channel_status(&state.db, &message_id, &status).await? else { return Ok(()) };
            let session = crate::domain::SessionId(moved.session);
            state.hub.channel_status(session, moved.seq, status);
            moved.visitor_read.then_some((moved.session, moved.seq))
        }
    };
    if let Some((session, seq)) = moved {
        state.hub.visitor_read(crate::domain::SessionId(session), seq);
    }
    Ok(())
}

/// Stores one inbound message in its sender's conversation. A message that
/// can never be stored (ids with NUL bytes, an id already stored in another
/// conversation) is logged and skipped: refusing the batch would only make
/// Meta send it again for hours.
async fn store_inbound(state: &AppState, channel: Channel, inbound: Inbound, max_chars: usize) -> Result<(), ApiError> {
    if inbound.sender.contains('\0') || inbound.message_id.contains('\0') {
        tracing::warn!(%channel, "skipped a webhook message whose ids hold NUL bytes");
        return Ok(());
    }
    let name = inbound.name.clone().filter(|n| !n.contains('\0'));
    // A WhatsApp sender is a phone number (wa_id: digits, no +).
    let phone = (channel == Channel::Whatsapp && !inbound.sender.is_empty() && inbound.sender.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("+{}", inbound.sender));
    let customer = Customer { name, phone, ..Default::default() };
    let session = state
        .hub
        .external_session(channel, &inbound.sender, &customer, serde_json::json!({}))
        .await
        .map_err(ApiError::Unavailable)?;
    let (text, attachments) = fetch_media(state, session.id(), &inbound).await;
    let text: String = text.chars().take(max_chars).collect();
    let Ok(body) = MessageBody::parse(&text, attachments, max_chars) else { return Ok(()) };
    match session.store_external(inbound.message_id, MessageRole::Visitor, body).await {
        Ok(_) => Ok(()),
        Err(PersistError::Conflict(id)) => {
            state.hub.record_error("webhook", format!("{channel} message {id:?} is already stored in another conversation; skipped"), serde_json::json!({}), None);
            Ok(())
        }
        Err(e) => Err(ApiError::Unavailable(anyhow::anyhow!("a webhook message could not be stored: {e}"))),
    }
}

/// The files of an inbound message, fetched through the Graph API into
/// the store, and its text: a file that could not be fetched (too large, a
/// type we do not take, the Graph API down) is named in the text instead,
/// so staff know something was sent. A webhook Meta sends again fetches
/// again; the message is stored once and the extra copies, never sent in a
/// message, are swept after a day.
async fn fetch_media(state: &AppState, session: crate::domain::SessionId, inbound: &Inbound) -> (String, Vec<crate::domain::Attachment>) {
    let mut text = inbound.text.clone();
    let mut attachments = Vec::new();
    for media in &inbound.media {
        let fetched = channels::media::fetch(&state.hub.http, &state.config, media, state.attachments.max_bytes).await;
        let stored = match fetched {
            Ok(file) => {
                let upload = Upload { name: file.name, bytes: file.bytes, session_id: Some(session.0), uploaded_by: None };
                state.attachments.store_new(&state.db, upload).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        };
        match stored {
            Ok(attachment) => attachments.push(attachment),
            Err(reason) => {
                tracing::warn!(kind = media.kind(), %reason, "an inbound file was not stored");
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&format!("[attachment: {} (not received: {reason})]", media.kind()));
            }
        }
    }
    (text, attachments)
}

/// `POST /webhooks/resend`: Resend's (Svix-signed) email events. The
/// signature is checked over the raw body before anything is parsed (401 and
/// nothing changes if it is missing, wrong, or more than 5 minutes old; also
/// when `RESEND_WEBHOOK_SECRET` is not set). Each `svix-id` is applied once;
/// events for emails we do not know, and event types we do not track, are
/// answered 200 so Resend stops retrying them.
pub async fn resend_event(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    use crate::domain::email::Tracking;
    use crate::email::signature;
    use crate::store::emails::{Applied, EmailRef};

    if body.len() > channels::MAX_WEBHOOK_BYTES {
        return Err(ApiError::PayloadTooLarge(channels::MAX_WEBHOOK_BYTES));
    }
    let Some(secret) = state.config.resend_webhook_secret.as_deref() else {
        tracing::warn!("a Resend webhook arrived but RESEND_WEBHOOK_SECRET is not set; refused");
        return Err(ApiError::BadSignature("the webhook secret is not configured".into()));
    };
    let header = |name: &str| req.headers().get(name).and_then(|h| h.to_str().ok()).unwrap_or("");
    let svix_id = header("svix-id");
    signature::verify(secret, svix_id, header("svix-timestamp"), header("svix-signature"), &body, chrono::Utc::now().timestamp())
        .map_err(|e| ApiError::BadSignature(e.to_string()))?;
    let event: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("invalid_json", format!("not valid JSON: {e}")))?;
    let kind = event.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let Some(tracking) = Tracking::of_event(kind) else {
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "ignored": "event type not tracked" })));
    };
    let data = &event["data"];
    let ours = email_tag(&data["tags"]).and_then(|id| id.parse().ok());
    let provider_id = data.get("email_id").and_then(|v| v.as_str());
    let link = data.pointer("/click/link").and_then(|v| v.as_str());
    let at = event
        .get("created_at")
        .and_then(|v| v.as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now);
    let applied = crate::store::emails::apply_event(&state.db, svix_id, EmailRef { ours, provider_id }, tracking, link, at).await?;
    Ok(HttpResponse::Ok().json(match applied {
        Applied::Changed(session, email) => {
            let status = email.status.clone();
            state.hub.email_changed(crate::domain::SessionId(session), email);
            serde_json::json!({ "status": status })
        }
        Applied::Duplicate => serde_json::json!({ "ignored": "already applied" }),
        Applied::UnknownEmail => serde_json::json!({ "ignored": "unknown email" }),
    }))
}

/// Our email id from the event's tags: an object (`{"chathub_email_id": …}`,
/// as Resend's events carry them) or a list of `{name, value}`.
fn email_tag(tags: &serde_json::Value) -> Option<&str> {
    const TAG: &str = crate::email::EMAIL_ID_TAG;
    match tags {
        serde_json::Value::Object(map) => map.get(TAG).and_then(|v| v.as_str()),
        serde_json::Value::Array(list) => list.iter().find(|t| t["name"] == TAG).and_then(|t| t["value"].as_str()),
        _ => None,
    }
}
