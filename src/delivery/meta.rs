//! Replies out to Meta: the Messenger Send API (`POST {GRAPH_API_URL}/me/messages`)
//! and the WhatsApp Cloud API (`POST {GRAPH_API_URL}/{WHATSAPP_PHONE_NUMBER_ID}/messages`),
//! both with the token as a Bearer header. Long texts are split at the
//! channels' limits. `typing_on` is a best-effort call made directly, not
//! through the outbox: a lost typing indicator does not matter.

use serde_json::{Value, json};

use super::{Job, Outcome, classify, transport_error};
use crate::config::Config;

/// Longest text one Messenger message may carry.
const MESSENGER_MAX_CHARS: usize = 2000;
/// Longest text one WhatsApp message may carry.
const WHATSAPP_MAX_CHARS: usize = 4096;

fn chunks(text: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(max).map(|c| c.iter().collect()).collect()
}

/// Posts every part; the receipt is the channel's id for the last one
/// (Messenger `message_id`, WhatsApp `messages[0].id`): a read of it is a
/// read of them all.
async fn post_all(http: &reqwest::Client, url: &str, token: &str, bodies: Vec<Value>) -> Outcome {
    let mut last = Outcome::Delivered { status: 200, receipt: None };
    for body in bodies {
        last = match http.post(url).bearer_auth(token).json(&body).send().await {
            Ok(response) if response.status().is_success() => {
                let status = response.status().as_u16();
                let answer = response.json::<Value>().await.unwrap_or(Value::Null);
                let receipt = answer.get("message_id").or_else(|| answer.pointer("/messages/0/id")).and_then(Value::as_str).map(str::to_owned);
                Outcome::Delivered { status, receipt }
            }
            Ok(response) => classify(response).await,
            Err(e) => transport_error(e),
        };
        if !matches!(last, Outcome::Delivered { .. }) {
            break;
        }
    }
    last
}

pub async fn send_messenger(http: &reqwest::Client, config: &Config, job: &Job) -> Outcome {
    let Some(token) = &config.messenger_page_token else { return super::skipped(config, job) };
    let (Some(psid), Some(text)) = (job.payload["recipient"].as_str(), job.payload["text"].as_str()) else {
        return Outcome::Permanent { status: None, error: "malformed messenger.send event".into() };
    };
    let bodies = chunks(text, MESSENGER_MAX_CHARS)
        .into_iter()
        .map(|part| json!({"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": {"text": part}}))
        .collect();
    post_all(http, &format!("{}/me/messages", config.graph_api_url.trim_end_matches('/')), token, bodies).await
}

pub async fn send_whatsapp(http: &reqwest::Client, config: &Config, job: &Job) -> Outcome {
    let (Some(token), Some(phone_id)) = (&config.whatsapp_token, &config.whatsapp_phone_number_id) else {
        return super::skipped(config, job);
    };
    let (Some(to), Some(text)) = (job.payload["recipient"].as_str(), job.payload["text"].as_str()) else {
        return Outcome::Permanent { status: None, error: "malformed whatsapp.send event".into() };
    };
    let bodies = chunks(text, WHATSAPP_MAX_CHARS)
        .into_iter()
        .map(|part| json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text", "text": {"preview_url": false, "body": part}}))
        .collect();
    post_all(http, &format!("{}/{phone_id}/messages", config.graph_api_url.trim_end_matches('/')), token, bodies).await
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
