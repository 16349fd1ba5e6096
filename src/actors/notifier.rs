//! The notifier actor: delivers outbox rows (written in the same transaction
//! as the event that caused them) to n8n, Resend and Meta.
//!
//! Inputs: a poll every `NOTIFIER_POLL_MS`, and `Wake` when new rows commit.
//!
//! Claiming is a lease (`store::deliveries::claim`): it bumps `attempts` and
//! pushes `next_attempt_at` past the request timeout, so several nodes never
//! deliver the same row at once, and a row whose node died mid-delivery is
//! picked up again when the lease runs out.
//! After an attempt the row becomes `delivered`, `failed` (retry at
//! `next_attempt_at`: exponential backoff with jitter, or the target's
//! `Retry-After`), `dead` (a 4xx that cannot succeed, or `NOTIFIER_MAX_ATTEMPTS`
//! reached) or `skipped` (target not configured; kept for a manual retry).
//! Chats never wait for any of this: the notifier runs on its own.

use std::time::Duration;

use actix::prelude::*;
use rand::Rng;

use super::handles::SupervisorHandle;
use super::supervisor::SessionEvent;
use crate::attachments::AttachmentStore;
use crate::config::Config;
use crate::delivery::{self, Job, Outcome};
use crate::domain::SessionId;
use crate::postgres::Db;
use crate::store::deliveries::{self as store, AttemptResult};
use std::sync::Arc;

/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Longest `Retry-After` honoured (a target asking for days is capped).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// New outbox rows were committed: look now rather than at the next poll.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

pub struct Notifier {
    db: Db,
    /// Told when an email's status moves (the session's watchers see it).
    supervisor: SupervisorHandle,
    config: Arc<Config>,
    /// Staff files going out to Messenger/WhatsApp are read from here.
    attachments: Arc<AttachmentStore>,
    http: reqwest::Client,
    in_flight: usize,
    /// A claim query is running.
    claiming: bool,
}

impl Notifier {
    pub fn new(db: Db, config: Arc<Config>, attachments: Arc<AttachmentStore>, supervisor: SupervisorHandle) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.notifier_timeout())
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { db, supervisor, config, attachments, http, in_flight: 0, claiming: false })
    }

    fn claim(&mut self, ctx: &mut Context<Self>) {
        let free = self.config.notifier_concurrency.saturating_sub(self.in_flight);
        if self.claiming || free == 0 {
            return;
        }
        self.claiming = true;
        let db = self.db.clone();
        let lease = self.config.notifier_timeout() * 2 + Duration::from_secs(5);
        async move { claim(&db, free as i64, lease).await }
            .into_actor(self)
            .map(|claimed, actor, ctx| {
                actor.claiming = false;
                match claimed {
                    Ok(jobs) => {
                        let full = !jobs.is_empty();
                        for job in jobs {
                            actor.start(job, ctx);
                        }
                        // A full batch may mean more is due.
                        if full {
                            actor.claim(ctx);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not claim deliveries"),
                }
            })
            .spawn(ctx);
    }

    fn start(&mut self, job: Job, ctx: &mut Context<Self>) {
        self.in_flight += 1;
        let (http, config, db, supervisor) = (self.http.clone(), self.config.clone(), self.db.clone(), self.supervisor.clone());
        let files = self.attachments.clone();
        async move {
            let outcome = delivery::deliver(&http, &config, &db, &files, &job).await;
            if let Err(e) = record(&db, &config, &job, &outcome, &supervisor).await {
                // The lease runs out and the row is tried again.
                tracing::warn!(error = %e, id = job.id, "could not record a delivery outcome");
            }
        }
        .into_actor(self)
        .map(|(), actor, ctx| {
            actor.in_flight -= 1;
            actor.claim(ctx);
        })
        .spawn(ctx);
    }
}

impl Actor for Notifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let c = &self.config;
        if c.n8n_webhook_url.is_none() {
            tracing::warn!("N8N_WEBHOOK_URL is not set: completed leads are kept as skipped deliveries");
        } else if c.n8n_webhook_secret.is_none() {
            tracing::warn!("N8N_WEBHOOK_SECRET is not set: lead webhooks are sent unsigned");
        }
        if c.resend_api_key.is_none() {
            tracing::warn!("RESEND_API_KEY is not set: staff cannot email leads");
        }
        if !c.alert_emails_configured() {
            tracing::warn!("RESEND_API_KEY or QA_ALERT_EMAILS is not set: QA alerts are kept as skipped deliveries");
        }
        ctx.run_interval(self.config.notifier_poll(), |actor, ctx| actor.claim(ctx));
        self.claim(ctx);
    }
}

impl Handler<Wake> for Notifier {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.claim(ctx);
    }
}

async fn claim(db: &Db, limit: i64, lease: Duration) -> anyhow::Result<Vec<Job>> {
    Ok(store::claim(db, limit, lease).await?)
}

/// The pause before attempt `attempts + 1`: base × 2^(attempts-1), ±20 %
/// jitter, capped; a target's `Retry-After` wins.
pub fn backoff(base: Duration, attempts: i32, retry_after: Option<Duration>) -> Duration {
    if let Some(after) = retry_after {
        return after.min(MAX_RETRY_AFTER);
    }
    let exponential = base.saturating_mul(1u32 << (attempts.clamp(1, 20) - 1) as u32).min(MAX_BACKOFF);
    let jitter = rand::rng().random_range(0.8..1.2);
    exponential.mul_f64(jitter)
}

/// Stores the attempt's outcome, then what it changed beyond the outbox
/// (an email's status), which the dashboards watching its session hear.
async fn record(db: &Db, config: &Config, job: &Job, outcome: &Outcome, supervisor: &SupervisorHandle) -> anyhow::Result<()> {
    let (result, label) = match outcome {
        Outcome::Delivered { status, .. } => (AttemptResult::Delivered { status: *status }, "delivered"),
        Outcome::Retry { status, error, retry_after } if job.attempts < config.notifier_max_attempts => {
            let delay = backoff(config.notifier_retry_base(), job.attempts, *retry_after);
            tracing::info!(id = job.id, event = %job.event_type, attempt = job.attempts, retry_in = ?delay, %error, "delivery failed; will retry");
            (AttemptResult::Failed { delay, status: *status, error }, "retry")
        }
        Outcome::Retry { status, error, .. } | Outcome::Permanent { status, error } => {
            tracing::warn!(id = job.id, event = %job.event_type, attempts = job.attempts, %error, "delivery dead-lettered");
            (AttemptResult::Dead { status: *status, error }, "dead")
        }
        Outcome::Skipped { reason } => (AttemptResult::Skipped { reason }, "skipped"),
    };
    store::record_attempt(db, job.id, result).await?;
    metrics::counter!("chathub_deliveries_total", "outcome" => label).increment(1);
    if let Some((session_id, email)) = delivery::settle(db, job, outcome, label == "dead").await? {
        supervisor.event(SessionEvent::EmailChanged { session_id: SessionId(session_id), email: Arc::new(email) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let base = Duration::from_secs(2);
        for (attempt, expected) in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 64.0)] {
            let d = backoff(base, attempt, None).as_secs_f64();
            assert!((expected * 0.8..=expected * 1.2).contains(&d), "attempt {attempt}: {d}");
        }
        assert_eq!(backoff(base, 30, None).as_secs_f64().round() as u64 <= 3600 * 12 / 10, true);
        assert_eq!(backoff(base, 1, Some(Duration::from_secs(7))), Duration::from_secs(7));
    }
}
