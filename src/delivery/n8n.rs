//! `lead.completed` → `N8N_WEBHOOK_URL`, signed the Standard Webhooks way:
//! `webhook-id` (the event's idempotency key, the same on every retry),
//! `webhook-timestamp` (Unix seconds) and `webhook-signature`
//! (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`). A secret of the
//! form `whsec_<base64>` is used as the standard says (the decoded bytes);
//! any other secret is used as raw bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

use super::{Job, Outcome, classify, transport_error};
use crate::config::Config;
use crate::postgres::Db;

pub fn secret_bytes(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD.decode(encoded).unwrap_or_else(|_| secret.as_bytes().to_vec()),
        None => secret.as_bytes().to_vec(),
    }
}

/// `v1,<signature>` for the given message.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret_bytes(secret)).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

pub async fn deliver(http: &reqwest::Client, config: &Config, db: &Db, job: &Job) -> Outcome {
    let Some(url) = &config.n8n_webhook_url else { return Outcome::Skipped { reason: "N8N_WEBHOOK_URL is not set" } };
    let transcript = match job.session_id {
        Some(id) => match super::transcript(db, id).await {
            Ok(t) => t,
            Err(e) => return Outcome::Retry { status: None, error: format!("reading the transcript: {e}"), retry_after: None },
        },
        None => Vec::new(),
    };
    let mut data = job.payload.clone();
    data["transcript"] = json!(transcript);
    let body = serde_json::to_vec(&json!({
        "type": "lead.completed",
        "timestamp": crate::protocol::rfc3339::format(&chrono::Utc::now()),
        "data": data,
    }))
    .expect("JSON serialises");
    let timestamp = chrono::Utc::now().timestamp();
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &job.idempotency_key)
        .header("webhook-timestamp", timestamp.to_string());
    if let Some(secret) = &config.n8n_webhook_secret {
        request = request.header("webhook-signature", signature(secret, &job.idempotency_key, timestamp, &body));
    }
    match request.body(body).send().await {
        Ok(response) => classify(response).await,
        Err(e) => transport_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks specification's test vectors.
    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let timestamp = 1614265330;
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(signature(secret, id, timestamp, body), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
