//! Where outbox rows go. Each event type has one target: `lead.completed` →
//! n8n (Standard Webhooks signed), `qa.issue` and `email.send` → Resend,
//! `messenger.send` / `whatsapp.send` → Meta's send APIs. `deliver` makes
//! one attempt and classifies the outcome; the notifier actor decides about
//! retries, backoff and dead-lettering.

pub mod meta;
pub mod n8n;
pub mod resend;

use std::time::Duration;

use uuid::Uuid;

use crate::attachments::AttachmentStore;
use crate::config::Config;
use crate::postgres::Db;
use crate::protocol::EmailView;
use crate::store::emails;

/// A claimed outbox row (see `store::deliveries::claim`).
pub use crate::store::deliveries::ClaimedDelivery as Job;

/// What one attempt achieved.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `receipt`: the target's id for what it accepted (Resend's email id).
    Delivered { status: u16, receipt: Option<String> },
    /// Worth trying again (5xx, 408, 429, timeouts, connection errors).
    Retry { status: Option<u16>, error: String, retry_after: Option<Duration> },
    /// Will never succeed as it is (other 4xx, a malformed event).
    Permanent { status: Option<u16>, error: String },
    /// The target is not configured; kept as `skipped`, retried by hand later.
    Skipped { reason: &'static str },
}

/// Classifies an HTTP answer.
pub async fn classify(response: reqwest::Response) -> Outcome {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    if response.status().is_success() {
        return Outcome::Delivered { status, receipt: None };
    }
    let body: String = response.text().await.unwrap_or_default().chars().take(500).collect();
    let error = format!("HTTP {status}: {body}");
    match status {
        408 | 425 | 429 | 500..=599 => Outcome::Retry { status: Some(status), error, retry_after },
        _ => Outcome::Permanent { status: Some(status), error },
    }
}

pub fn transport_error(e: reqwest::Error) -> Outcome {
    Outcome::Retry { status: None, error: format!("request failed: {e}"), retry_after: None }
}

/// Why events of this type cannot be delivered with this configuration
/// (the setting that is missing), or `None` if their target is set up.
pub fn unconfigured(config: &Config, event_type: &str) -> Option<&'static str> {
    let missing = |unset: bool, reason: &'static str| unset.then_some(reason);
    match event_type {
        "lead.completed" => missing(config.n8n_webhook_url.is_none(), "N8N_WEBHOOK_URL is not set"),
        "qa.issue" => missing(config.resend_api_key.is_none(), "RESEND_API_KEY is not set").or_else(|| {
            missing(config.qa_alert_recipients().is_empty(), "QA_ALERT_EMAILS is not set")
        }),
        "email.send" => missing(config.resend_api_key.is_none(), "RESEND_API_KEY is not set"),
        "ai.alert" => missing(
            config.alert_webhook_url.is_none() && !config.alert_emails_configured(),
            "ALERT_WEBHOOK_URL is not set, nor RESEND_API_KEY with QA_ALERT_EMAILS",
        ),
        "messenger.send" => missing(config.messenger_page_token.is_none(), "MESSENGER_PAGE_TOKEN is not set"),
        "whatsapp.send" => missing(
            config.whatsapp_token.is_none() || config.whatsapp_phone_number_id.is_none(),
            "WHATSAPP_TOKEN or WHATSAPP_PHONE_NUMBER_ID is not set",
        ),
        _ => None,
    }
}

/// The outcome for a job whose target is not configured.
fn skipped(config: &Config, job: &Job) -> Outcome {
    Outcome::Skipped { reason: unconfigured(config, &job.event_type).unwrap_or("its target is not configured") }
}

/// One attempt at delivering `job`.
pub async fn deliver(http: &reqwest::Client, config: &Config, db: &Db, files: &AttachmentStore, job: &Job) -> Outcome {
    if unconfigured(config, &job.event_type).is_some() {
        return skipped(config, job);
    }
    match job.event_type.as_str() {
        "lead.completed" => n8n::deliver(http, config, db, job).await,
        "qa.issue" => resend::deliver(http, config, db, job).await,
        "email.send" => resend::send_lead_email(http, config, db, job).await,
        "ai.alert" => ai_alert(http, config, job).await,
        "messenger.send" => meta::send_messenger(http, config, files, job).await,
        "whatsapp.send" => meta::send_whatsapp(http, config, files, job).await,
        _ => Outcome::Permanent { status: None, error: format!("no target for event type {}", job.event_type) },
    }
}

/// `ai.alert` to `ALERT_WEBHOOK_URL` and to the QA alert emails, whichever
/// are set; delivered when every one of them took it (a retry sends both
/// again, under the same idempotency key).
async fn ai_alert(http: &reqwest::Client, config: &Config, job: &Job) -> Outcome {
    let mut outcome = Outcome::Skipped { reason: "no alert target" };
    if let Some(url) = &config.alert_webhook_url {
        outcome = n8n::post_signed(http, url, config.alert_webhook_secret.as_deref(), job, job.payload.clone()).await;
        if !matches!(outcome, Outcome::Delivered { .. }) {
            return outcome;
        }
    }
    if config.alert_emails_configured() {
        outcome = resend::send_ai_alert(http, config, job).await;
    }
    outcome
}

/// What an attempt changed besides its outbox row: a reply to Messenger or
/// WhatsApp remembers the channel's id for it (statuses come back by it); an `email.send` moves
/// its email to `sent` (with Resend's id) when delivered, or to `failed`
/// when dead-lettered or skipped. Returns the session and the email as it
/// now is, for the dashboards.
pub async fn settle(db: &Db, job: &Job, outcome: &Outcome, dead: bool) -> anyhow::Result<Option<(Uuid, EmailView)>> {
    if let ("messenger.send" | "whatsapp.send", Outcome::Delivered { receipt: Some(message_id), .. }) = (job.event_type.as_str(), outcome) {
        let seq = job.payload.get("seq").and_then(|v| v.as_i64());
        if let (Some(session), Some(seq)) = (job.session_id, seq) {
            crate::store::reads::sent_on_channel(db, message_id, session, seq).await?;
        }
        return Ok(None);
    }
    if job.event_type != "email.send" {
        return Ok(None);
    }
    let Some(id) = email_id(job) else { return Ok(None) };
    let changed = match outcome {
        Outcome::Delivered { receipt, .. } => emails::mark_sent(db, id, receipt.as_deref()).await?,
        Outcome::Skipped { reason } => emails::mark_failed(db, id, reason).await?,
        Outcome::Retry { error, .. } | Outcome::Permanent { error, .. } if dead => emails::mark_failed(db, id, error).await?,
        _ => None,
    };
    Ok(changed)
}

/// The email an `email.send` job sends (`payload.email_id`).
pub fn email_id(job: &Job) -> Option<Uuid> {
    job.payload.get("email_id").and_then(|v| v.as_str()).and_then(|v| v.parse().ok())
}

/// The transcript of a session, for payloads that carry it.
pub async fn transcript(db: &Db, session_id: Uuid) -> anyhow::Result<Vec<crate::protocol::MessageView>> {
    Ok(crate::store::sessions::messages(db, session_id, 0, 10_000).await.map_err(|e| anyhow::anyhow!("{e}"))?)
}
