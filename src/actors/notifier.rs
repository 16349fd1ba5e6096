//! The notifier actor: delivers outbox rows (written in the same transaction
//! as the event that caused them) to n8n, Resend and Meta.
//!
//! Inputs: a poll every `NOTIFIER_POLL_MS`, and `Wake` when new rows commit.
//!
//! Claiming is a lease: `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
//! LOCKED)` bumps `attempts` and pushes `next_attempt_at` past the request
//! timeout, so several nodes never deliver the same row at once, and a row
//! whose node died mid-delivery is picked up again when the lease runs out.
//! After an attempt the row becomes `delivered`, `failed` (retry at
//! `next_attempt_at`: exponential backoff with jitter, or the target's
//! `Retry-After`), `dead` (a 4xx that cannot succeed, or `NOTIFIER_MAX_ATTEMPTS`
//! reached) or `skipped` (target not configured; kept for a manual retry).
//! Chats never wait for any of this: the notifier runs on its own.

use std::time::Duration;

use actix::prelude::*;
use rand::Rng;

use crate::config::Config;
use crate::delivery::{self, Job, Outcome};
use crate::postgres::Db;
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
    config: Arc<Config>,
    http: reqwest::Client,
    in_flight: usize,
    /// A claim query is running.
    claiming: bool,
}

impl Notifier {
    pub fn new(db: Db, config: Arc<Config>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.notifier_timeout())
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { db, config, http, in_flight: 0, claiming: false })
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
        let (http, config, db) = (self.http.clone(), self.config.clone(), self.db.clone());
        async move {
            let outcome = delivery::deliver(&http, &config, &db, &job).await;
            if let Err(e) = record(&db, &config, &job, &outcome).await {
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
        if c.resend_api_key.is_none() || c.qa_alert_emails.is_none() {
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
    let rows = db
        .get()
        .await?
        .query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
             WHERE id IN (SELECT id FROM outbox WHERE status IN ('pending', 'failed') AND next_attempt_at <= now()
                          ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id, event_type, payload, idempotency_key, session_id, attempts",
            &[&limit, &lease.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Job {
            id: r.get(0),
            event_type: r.get(1),
            payload: r.get(2),
            idempotency_key: r.get(3),
            session_id: r.get(4),
            attempts: r.get(5),
        })
        .collect())
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

async fn record(db: &Db, config: &Config, job: &Job, outcome: &Outcome) -> anyhow::Result<()> {
    let client = db.get().await?;
    match outcome {
        Outcome::Delivered { status } => {
            client
                .execute(
                    "UPDATE outbox SET status = 'delivered', delivered_at = now(), last_status_code = $2, last_error = NULL, updated_at = now()
                     WHERE id = $1",
                    &[&job.id, &i32::from(*status)],
                )
                .await?;
            metrics::counter!("chathub_deliveries_total", "outcome" => "delivered").increment(1);
        }
        Outcome::Retry { status, error, retry_after } if job.attempts < config.notifier_max_attempts => {
            let delay = backoff(config.notifier_retry_base(), job.attempts, *retry_after);
            client
                .execute(
                    "UPDATE outbox SET status = 'failed', next_attempt_at = now() + make_interval(secs => $2),
                        last_status_code = $3, last_error = $4, updated_at = now() WHERE id = $1",
                    &[&job.id, &delay.as_secs_f64(), &status.map(i32::from), error],
                )
                .await?;
            tracing::info!(id = job.id, event = %job.event_type, attempt = job.attempts, retry_in = ?delay, %error, "delivery failed; will retry");
            metrics::counter!("chathub_deliveries_total", "outcome" => "retry").increment(1);
        }
        Outcome::Retry { status, error, .. } | Outcome::Permanent { status, error } => {
            client
                .execute(
                    "UPDATE outbox SET status = 'dead', last_status_code = $2, last_error = $3, updated_at = now() WHERE id = $1",
                    &[&job.id, &status.map(i32::from), error],
                )
                .await?;
            tracing::warn!(id = job.id, event = %job.event_type, attempts = job.attempts, %error, "delivery dead-lettered");
            metrics::counter!("chathub_deliveries_total", "outcome" => "dead").increment(1);
        }
        Outcome::Skipped { reason } => {
            client
                .execute(
                    "UPDATE outbox SET status = 'skipped', last_error = $2, updated_at = now() WHERE id = $1",
                    &[&job.id, reason],
                )
                .await?;
            metrics::counter!("chathub_deliveries_total", "outcome" => "skipped").increment(1);
        }
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
