//! `email_templates`: the emails staff send leads, with their usage count
//! and how the emails sent from each fared (sent, open, click and bounce
//! rates from `emails`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use crate::postgres::Db;
use crate::protocol::rfc3339;

#[derive(Debug, Serialize)]
pub struct TemplateRow {
    pub id: Uuid,
    pub name: String,
    pub category: String,
    pub subject: String,
    pub body: String,
    pub active: bool,
    pub usage_count: i32,
    pub created_by: Option<String>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub stats: TemplateStats,
}

/// How the emails sent from a template fared. Rates are over `sent` (the
/// emails Resend accepted), `null` before the first.
#[derive(Debug, Serialize)]
pub struct TemplateStats {
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub bounced: i64,
    pub open_rate: Option<f64>,
    pub click_rate: Option<f64>,
    pub bounce_rate: Option<f64>,
}

/// A template's fields as staff edit them.
pub struct TemplateFields<'a> {
    pub name: &'a str,
    pub category: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub active: bool,
}

const SELECT: &str = "SELECT t.id, t.name, t.category, t.subject, t.body, t.active, t.usage_count, t.created_by, t.created_at, t.updated_at,
        count(e.sent_at), count(e.delivered_at), count(e.opened_at), count(e.clicked_at), count(e.bounced_at)
    FROM email_templates t LEFT JOIN emails e ON e.template_id = t.id";

fn from_row(r: &tokio_postgres::Row) -> TemplateRow {
    let sent: i64 = r.get(10);
    let rate = |n: i64| (sent > 0).then(|| n as f64 / sent as f64);
    let (delivered, opened, clicked, bounced): (i64, i64, i64, i64) = (r.get(11), r.get(12), r.get(13), r.get(14));
    TemplateRow {
        id: r.get(0),
        name: r.get(1),
        category: r.get(2),
        subject: r.get(3),
        body: r.get(4),
        active: r.get(5),
        usage_count: r.get(6),
        created_by: r.get(7),
        created_at: r.get(8),
        updated_at: r.get(9),
        stats: TemplateStats {
            sent,
            delivered,
            opened,
            clicked,
            bounced,
            open_rate: rate(opened),
            click_rate: rate(clicked),
            bounce_rate: rate(bounced),
        },
    }
}

/// Templates by category and name; `category` narrows them, `active_only`
/// leaves out the switched-off ones.
pub async fn list(db: &Db, category: Option<&str>, active_only: bool) -> Result<Vec<TemplateRow>, StoreError> {
    let rows = db
        .get()
        .await?
        .query(
            &format!(
                "{SELECT} WHERE ($1::text IS NULL OR t.category = $1) AND (NOT $2 OR t.active)
                 GROUP BY t.id ORDER BY t.category, t.name, t.id"
            ),
            &[&category, &active_only],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

pub async fn get(db: &Db, id: Uuid) -> Result<TemplateRow, StoreError> {
    let row = db.get().await?.query_opt(&format!("{SELECT} WHERE t.id = $1 GROUP BY t.id"), &[&id]).await?;
    row.as_ref().map(from_row).ok_or(StoreError::NotFound("email template"))
}

pub async fn insert(db: &Db, fields: &TemplateFields<'_>, created_by: &str) -> Result<TemplateRow, StoreError> {
    let id = Uuid::new_v4();
    db.get()
        .await?
        .execute(
            "INSERT INTO email_templates (id, name, category, subject, body, active, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&id, &fields.name, &fields.category, &fields.subject, &fields.body, &fields.active, &created_by],
        )
        .await?;
    get(db, id).await
}

pub async fn update(db: &Db, id: Uuid, fields: &TemplateFields<'_>) -> Result<TemplateRow, StoreError> {
    let changed = db
        .get()
        .await?
        .execute(
            "UPDATE email_templates SET name = $2, category = $3, subject = $4, body = $5, active = $6, updated_at = now() WHERE id = $1",
            &[&id, &fields.name, &fields.category, &fields.subject, &fields.body, &fields.active],
        )
        .await?;
    if changed == 0 {
        return Err(StoreError::NotFound("email template"));
    }
    get(db, id).await
}

/// Deletes a template; the emails sent from it keep their text (their
/// `template_id` becomes null).
pub async fn delete(db: &Db, id: Uuid) -> Result<(), StoreError> {
    let deleted = db.get().await?.execute("DELETE FROM email_templates WHERE id = $1", &[&id]).await?;
    if deleted == 0 { Err(StoreError::NotFound("email template")) } else { Ok(()) }
}
