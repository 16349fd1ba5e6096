//! Replies out to Meta: the Messenger Send API (`POST {GRAPH_API_URL}/me/messages`)
//! and the WhatsApp Cloud API (`POST {GRAPH_API_URL}/{WHATSAPP_PHONE_NUMBER_ID}/messages`),
//! both with the token as a Bearer header. Long texts are split at the
//! channels' limits. Staff files go after the text, one media message each,
//! uploaded from our store (Messenger: the Send API's multipart `filedata`;
//! WhatsApp: `POST /{phone-number-id}/media`, then a message naming the
//! media id), so nothing of ours needs a public URL. `typing_on` is a
//! best-effort call made directly, not through the outbox: a lost typing
//! indicator does not matter.

use serde_json::{Value, json};

use super::{Job, Outcome, classify, transport_error};
use crate::attachments::AttachmentStore;
use crate::config::Config;
use crate::domain::Attachment;

/// Longest text one Messenger message may carry.
const MESSENGER_MAX_CHARS: usize = 2000;
/// Longest text one WhatsApp message may carry.
const WHATSAPP_MAX_CHARS: usize = 4096;

fn chunks(text: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(max).map(|c| c.iter().collect()).collect()
}

/// One request to a send API.
enum Request {
    Json(Value),
    /// A multipart form (built per attempt: forms are consumed when sent).
    Form(reqwest::multipart::Form),
}

/// Posts every part in order, stopping at the first that fails; the
/// receipt is the channel's id for the last one (Messenger `message_id`,
/// WhatsApp `messages[0].id`): a read of it is a read of them all.
async fn post_all(http: &reqwest::Client, url: &str, token: &str, requests: Vec<Request>) -> Outcome {
    let mut last = Outcome::Delivered { status: 200, receipt: None };
    for request in requests {
        let builder = http.post(url).bearer_auth(token);
        let builder = match request {
            Request::Json(body) => builder.json(&body),
            Request::Form(form) => builder.multipart(form),
        };
        last = match post(builder).await {
            Ok(answer) => {
                let receipt = answer.get("message_id").or_else(|| answer.pointer("/messages/0/id")).and_then(Value::as_str).map(str::to_owned);
                Outcome::Delivered { status: 200, receipt }
            }
            Err(outcome) => outcome,
        };
        if !matches!(last, Outcome::Delivered { .. }) {
            break;
        }
    }
    last
}

/// Sends a request; the JSON answer on success, else the classified outcome.
async fn post(builder: reqwest::RequestBuilder) -> Result<Value, Outcome> {
    match builder.send().await {
        Ok(response) if response.status().is_success() => Ok(response.json::<Value>().await.unwrap_or(Value::Null)),
        Ok(response) => Err(classify(response).await),
        Err(e) => Err(transport_error(e)),
    }
}

/// The files a send event carries (none for older events).
fn attachments_of(job: &Job) -> Vec<Attachment> {
    serde_json::from_value(job.payload["attachments"].clone()).unwrap_or_default()
}

/// A stored file as a multipart part; a file gone from the store (its
/// session deleted meanwhile) can never be sent.
async fn file_part(files: &AttachmentStore, file: &Attachment) -> Result<reqwest::multipart::Part, Outcome> {
    let bytes = match files.get(file.id).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(Outcome::Permanent { status: None, error: format!("attachment {} is no longer stored", file.id) }),
        Err(e) => return Err(Outcome::Retry { status: None, error: format!("reading attachment {}: {e:#}", file.id), retry_after: None }),
    };
    reqwest::multipart::Part::bytes(bytes.to_vec())
        .file_name(file.name.clone())
        .mime_str(&file.content_type)
        .map_err(|e| Outcome::Permanent { status: None, error: format!("attachment {}: {e}", file.id) })
}

pub async fn send_messenger(http: &reqwest::Client, config: &Config, files: &AttachmentStore, job: &Job) -> Outcome {
    let Some(token) = &config.messenger_page_token else { return super::skipped(config, job) };
    let (Some(psid), Some(text)) = (job.payload["recipient"].as_str(), job.payload["text"].as_str()) else {
        return Outcome::Permanent { status: None, error: "malformed messenger.send event".into() };
    };
    let mut requests: Vec<Request> = chunks(text, MESSENGER_MAX_CHARS)
        .into_iter()
        .map(|part| Request::Json(json!({"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": {"text": part}})))
        .collect();
    for file in attachments_of(job) {
        let kind = if file.is_image() { "image" } else { "file" };
        let part = match file_part(files, &file).await {
            Ok(part) => part,
            Err(outcome) => return outcome,
        };
        let form = reqwest::multipart::Form::new()
            .text("recipient", json!({"id": psid}).to_string())
            .text("messaging_type", "RESPONSE")
            .text("message", json!({"attachment": {"type": kind, "payload": {"is_reusable": false}}}).to_string())
            .part("filedata", part);
        requests.push(Request::Form(form));
    }
    post_all(http, &format!("{}/me/messages", config.graph_api_url.trim_end_matches('/')), token, requests).await
}

pub async fn send_whatsapp(http: &reqwest::Client, config: &Config, files: &AttachmentStore, job: &Job) -> Outcome {
    let (Some(token), Some(phone_id)) = (&config.whatsapp_token, &config.whatsapp_phone_number_id) else {
        return super::skipped(config, job);
    };
    let (Some(to), Some(text)) = (job.payload["recipient"].as_str(), job.payload["text"].as_str()) else {
        return Outcome::Permanent { status: None, error: "malformed whatsapp.send event".into() };
    };
    let graph = config.graph_api_url.trim_end_matches('/');
    let mut requests: Vec<Request> = chunks(text, WHATSAPP_MAX_CHARS)
        .into_iter()
        .map(|part| Request::Json(json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text", "text": {"preview_url": false, "body": part}})))
        .collect();
    for file in attachments_of(job) {
        let part = match file_part(files, &file).await {
            Ok(part) => part,
            Err(outcome) => return outcome,
        };
        let upload = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", file.content_type.clone())
            .part("file", part);
        let media_id = match post(http.post(format!("{graph}/{phone_id}/media")).bearer_auth(token).multipart(upload)).await {
            Ok(answer) => match answer.get("id").and_then(Value::as_str) {
                Some(id) => id.to_owned(),
                None => return Outcome::Retry { status: None, error: "the media upload answered without an id".into(), retry_after: None },
            },
            Err(outcome) => return outcome,
        };
        let media = if file.is_image() {
            json!({"type": "image", "image": {"id": media_id}})
        } else {
            json!({"type": "document", "document": {"id": media_id, "filename": file.name}})
        };
        let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to});
        body.as_object_mut().expect("an object").extend(media.as_object().expect("an object").clone());
        requests.push(Request::Json(body));
    }
    post_all(http, &format!("{graph}/{phone_id}/messages"), token, requests).await
}

/// Shows "typing…" in Messenger while the agent works (best effort).
pub async fn messenger_typing(http: &reqwest::Client, config: &Config, psid: &str) {
    let Some(token) = &config.messenger_page_token else { return };
    let url = format!("{}/me/messages", config.graph_api_url.trim_end_matches('/'));
    let body = json!({"recipient": {"id": psid}, "sender_action": "typing_on"});
    if let Err(e) = http.post(url).bearer_auth(token).json(&body).send().await {
        tracing::debug!(error = %e, "typing_on failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_split_at_the_channel_limit() {
        let parts = chunks(&"é".repeat(4500), MESSENGER_MAX_CHARS);
        assert_eq!(parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(), vec![2000, 2000, 500]);
    }
}
