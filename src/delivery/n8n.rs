//! `lead.completed` → `N8N_WEBHOOK_URL`, signed the Standard Webhooks way:
//! `webhook-id` (the event's idempotency key, the same on every retry),
//! `webhook-timestamp` (Unix seconds) and `webhook-signature`
//! (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`). A secret of the
//! form `whsec_<base64>` is used as the standard says (see
//! `email::signature`).

use serde_json::json;

use super::{Job, Outcome, classify, transport_error};
use crate::config::Config;
use crate::email::signature::sign;
use crate::postgres::Db;

pub async fn deliver(http: &reqwest::Client, config: &Config, db: &Db, job: &Job) -> Outcome {
    let Some(url) = &config.n8n_webhook_url else { return super::skipped(config, job) };
    let transcript = match job.session_id {
        Some(id) => match super::transcript(db, id).await {
            Ok(t) => t,
            Err(e) => return Outcome::Retry { status: None, error: format!("reading the transcript: {e}"), retry_after: None },
        },
        None => Vec::new(),
    };
    let mut data = job.payload.clone();
    data["transcript"] = json!(transcript);
    post_signed(http, url, config.n8n_webhook_secret.as_deref(), job, data).await
}

/// Posts `{"type","timestamp","data"}` for `job`, signed with `secret`
/// when there is one (also used for `ai.alert` webhooks).
pub async fn post_signed(http: &reqwest::Client, url: &str, secret: Option<&str>, job: &Job, data: serde_json::Value) -> Outcome {
    let body = serde_json::to_vec(&json!({
        "type": job.event_type,
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
    if let Some(secret) = secret {
        request = request.header("webhook-signature", sign(secret, &job.idempotency_key, timestamp, &body));
    }
    match request.body(body).send().await {
        Ok(response) => classify(response).await,
        Err(e) => transport_error(e),
    }
}
