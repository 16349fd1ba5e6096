//! `emails`, `email_events` and `email_address_flags`: the emails sent to
//! leads (queued with their `email.send` outbox row in one transaction),
//! what the notifier and Resend's webhook report about each, and the
//! addresses that bounced or complained.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::StoreError;
use crate::domain::email::{Tracking, status_after};
use crate::postgres::Db;
use crate::protocol::EmailView;

/// Links kept per email (clicks on more still count).
const MAX_LINKS: usize = 50;
/// Longest link kept.
const MAX_LINK_CHARS: usize = 2048;

const COLUMNS: &str = "id, template_id, subject, to_address, status, provider_id, sent_by, last_error, created_at, sent_at,
    delivered_at, opened_at, clicked_at, bounced_at, complained_at, open_count, click_count, clicked_links, session_id";

fn view(r: &tokio_postgres::Row) -> EmailView {
    EmailView {
        id: r.get(0),
        template_id: r.get(1),
        subject: r.get(2),
        to: r.get(3),
        status: r.get(4),
        provider_id: r.get(5),
        sent_by: r.get(6),
        error: r.get(7),
        created_at: r.get(8),
        sent_at: r.get(9),
        delivered_at: r.get(10),
        opened_at: r.get(11),
        clicked_at: r.get(12),
        bounced_at: r.get(13),
        complained_at: r.get(14),
        open_count: r.get(15),
        click_count: r.get(16),
        clicked_links: r.get(17),
    }
}

/// An email to queue.
pub struct NewEmail<'a> {
    pub session_id: Uuid,
    pub template_id: Option<Uuid>,
    pub to: &'a str,
    pub from: &'a str,
    pub subject: &'a str,
    pub html: &'a str,
    pub text: &'a str,
    pub sent_by: &'a str,
}

/// Stores the email, its `email.send` outbox row (idempotency key
/// `email.send/{id}`, the same on every retry) and the template's usage, in
/// one transaction. `NotFound` if the session is gone.
pub async fn queue(db: &Db, email: &NewEmail<'_>) -> Result<EmailView, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    if tx.query_opt("SELECT 1 FROM sessions WHERE id = $1 FOR SHARE", &[&email.session_id]).await?.is_none() {
        return Err(StoreError::NotFound("session"));
    }
    let id = Uuid::new_v4();
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO emails (id, session_id, template_id, to_address, from_address, subject, html, text, sent_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
            ),
            &[&id, &email.session_id, &email.template_id, &email.to, &email.from, &email.subject, &email.html, &email.text, &email.sent_by],
        )
        .await?;
    tx.execute(
        "INSERT INTO outbox (event_type, payload, idempotency_key, session_id) VALUES ('email.send', $1, $2, $3)",
        &[&json!({ "email_id": id }), &format!("email.send/{id}"), &email.session_id],
    )
    .await?;
    if let Some(template) = email.template_id {
        tx.execute("UPDATE email_templates SET usage_count = usage_count + 1 WHERE id = $1", &[&template]).await?;
    }
    tx.commit().await?;
    Ok(view(&row))
}

/// A session's emails, oldest first.
pub async fn for_session(db: &Db, session_id: Uuid) -> Result<Vec<EmailView>, StoreError> {
    let rows = db
        .get()
        .await?
        .query(&format!("SELECT {COLUMNS} FROM emails WHERE session_id = $1 ORDER BY created_at, id"), &[&session_id])
        .await?;
    Ok(rows.iter().map(view).collect())
}

/// What the notifier sends.
pub struct Outgoing {
    pub to: String,
    pub from: String,
    pub subject: String,
    pub html: String,
    pub text: String,
}

pub async fn outgoing(db: &Db, id: Uuid) -> Result<Option<Outgoing>, StoreError> {
    let row = db.get().await?.query_opt("SELECT to_address, from_address, subject, html, text FROM emails WHERE id = $1", &[&id]).await?;
    Ok(row.map(|r| Outgoing { to: r.get(0), from: r.get(1), subject: r.get(2), html: r.get(3), text: r.get(4) }))
}

/// Resend accepted the email (with its id, when it said one): `sent`,
/// unless a webhook event already moved it further. Returns the session and
/// the email as it now is.
pub async fn mark_sent(db: &Db, id: Uuid, provider_id: Option<&str>) -> Result<Option<(Uuid, EmailView)>, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            &format!(
                "UPDATE emails SET provider_id = COALESCE(provider_id, $2), sent_at = COALESCE(sent_at, now()), last_error = NULL,
                    status = CASE WHEN status IN ('queued', 'failed') THEN 'sent' ELSE status END
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &provider_id],
        )
        .await?;
    Ok(row.map(|r| (r.get(18), view(&r))))
}

/// The outbox gave up on it: `failed` with the reason (only while queued).
pub async fn mark_failed(db: &Db, id: Uuid, error: &str) -> Result<Option<(Uuid, EmailView)>, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            &format!("UPDATE emails SET status = 'failed', last_error = $2 WHERE id = $1 AND status = 'queued' RETURNING {COLUMNS}"),
            &[&id, &error],
        )
        .await?;
    Ok(row.map(|r| (r.get(18), view(&r))))
}

/// Which email a webhook event is about: our id (from the tag we send) or
/// Resend's.
pub struct EmailRef<'a> {
    pub ours: Option<Uuid>,
    pub provider_id: Option<&'a str>,
}

/// What applying a webhook event did.
pub enum Applied {
    /// Changed this email of this session.
    Changed(Uuid, EmailView),
    /// This `svix-id` was applied before.
    Duplicate,
    /// No email of ours.
    UnknownEmail,
}

/// Applies one tracking event once per `svix_id`: the timestamps of what
/// happened are set once (the first time), opens and clicks counted, the
/// clicked link remembered, the status moved only forward; a bounce or a
/// complaint flags the address.
pub async fn apply_event(
    db: &Db,
    svix_id: &str,
    email: EmailRef<'_>,
    event: Tracking,
    link: Option<&str>,
    at: DateTime<Utc>,
) -> Result<Applied, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let found = tx
        .query_opt(
            "SELECT id, status, to_address FROM emails WHERE id = $1 OR provider_id = $2 ORDER BY id = $1 DESC LIMIT 1 FOR UPDATE",
            &[&email.ours, &email.provider_id],
        )
        .await?;
    let Some(found) = found else { return Ok(Applied::UnknownEmail) };
    let (id, status, address): (Uuid, String, String) = (found.get(0), found.get(1), found.get(2));
    let fresh = tx
        .execute(
            "INSERT INTO email_events (svix_id, email_id, type) VALUES ($1, $2, $3) ON CONFLICT (svix_id) DO NOTHING",
            &[&svix_id, &id, &event.status()],
        )
        .await?;
    if fresh == 0 {
        return Ok(Applied::Duplicate);
    }
    let status = status_after(&status, event).to_owned();
    let column = match event {
        Tracking::Sent => "sent_at",
        Tracking::Delivered => "delivered_at",
        Tracking::Opened => "opened_at",
        Tracking::Clicked => "clicked_at",
        Tracking::Bounced => "bounced_at",
        Tracking::Complained => "complained_at",
    };
    let link = link.filter(|l| !l.is_empty() && l.chars().count() <= MAX_LINK_CHARS);
    let row = tx
        .query_one(
            &format!(
                "UPDATE emails SET status = $2, {column} = COALESCE({column}, $3),
                    provider_id = COALESCE(provider_id, $4),
                    open_count = open_count + $5::int, click_count = click_count + $6::int,
                    clicked_links = CASE WHEN $7::text IS NULL OR $7 = ANY(clicked_links) OR cardinality(clicked_links) >= $8
                                         THEN clicked_links ELSE clicked_links || $7::text END
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &status,
                &at,
                &email.provider_id,
                &i32::from(event == Tracking::Opened),
                &i32::from(event == Tracking::Clicked),
                &link,
                &(MAX_LINKS as i32),
            ],
        )
        .await?;
    if matches!(event, Tracking::Bounced | Tracking::Complained) {
        tx.execute(
            "INSERT INTO email_address_flags (address, reason) VALUES (lower($1), $2)
             ON CONFLICT (address) DO UPDATE SET reason = EXCLUDED.reason, flagged_at = now()",
            &[&address, &event.status()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Applied::Changed(row.get(18), view(&row)))
}

/// Why sending to `address` may not arrive: it bounced or complained
/// before (`reason`, when).
pub async fn address_flag(db: &Db, address: &str) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
    let row = db.get().await?.query_opt("SELECT reason, flagged_at FROM email_address_flags WHERE address = lower($1)", &[&address]).await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}
