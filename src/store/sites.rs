//! `sites`: where the widget may run and how it looks.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use crate::postgres::Db;
use crate::protocol::rfc3339;

/// A site as admins see it (`GET /api/sites`).
#[derive(Debug, Serialize)]
pub struct SiteRow {
    pub id: Uuid,
    pub key: String,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub greeting: Option<String>,
    pub color: String,
    pub position: String,
    pub prechat_form: bool,
    /// Sender of emails to this site's leads (`EMAIL_FROM` when unset).
    pub email_from: Option<String>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
}

const SITE_COLUMNS: &str = "id, key, name, allowed_origins, greeting, color, position, prechat_form, created_at, email_from";

impl SiteRow {
    fn from_row(r: &tokio_postgres::Row) -> Self {
        Self {
            id: r.get(0),
            key: r.get(1),
            name: r.get(2),
            allowed_origins: r.get(3),
            greeting: r.get(4),
            color: r.get(5),
            position: r.get(6),
            prechat_form: r.get(7),
            created_at: r.get(8),
            email_from: r.get(9),
        }
    }
}

/// Every site, by key.
pub async fn list(db: &Db) -> Result<Vec<SiteRow>, StoreError> {
    let rows = db.get().await?.query(&format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY key"), &[]).await?;
    Ok(rows.iter().map(SiteRow::from_row).collect())
}

/// The site with this public key.
pub async fn find(db: &Db, key: &str) -> Result<Option<SiteRow>, StoreError> {
    let row = db.get().await?.query_opt(&format!("SELECT {SITE_COLUMNS} FROM sites WHERE key = $1"), &[&key]).await?;
    Ok(row.as_ref().map(SiteRow::from_row))
}

/// A site's fields; `None` keeps the current value (or the default on
/// insert). `greeting: Some(None)` clears the greeting, and likewise
/// `email_from`.
#[derive(Debug, Default)]
pub struct SiteFields {
    pub name: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    pub greeting: Option<Option<String>>,
    pub color: Option<String>,
    pub position: Option<String>,
    pub prechat_form: Option<bool>,
    pub email_from: Option<Option<String>>,
}

/// Stores a new site; `Conflict` if the key is taken.
pub async fn insert(db: &Db, key: &str, name: &str, fields: &SiteFields) -> Result<SiteRow, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            &format!(
                "INSERT INTO sites (id, key, name, allowed_origins, greeting, color, position, prechat_form, email_from)
                 VALUES ($1, $2, $3, $4, $5, COALESCE($6, '#0d6efd'), COALESCE($7, 'right'), COALESCE($8, false), $9)
                 ON CONFLICT (key) DO NOTHING RETURNING {SITE_COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &key,
                &name,
                &fields.allowed_origins.clone().unwrap_or_default(),
                &fields.greeting.clone().flatten(),
                &fields.color,
                &fields.position,
                &fields.prechat_form,
                &fields.email_from.clone().flatten(),
            ],
        )
        .await?;
    row.as_ref().map(SiteRow::from_row).ok_or_else(|| StoreError::Conflict(format!("a site with key {key:?} exists")))
}

/// Changes a site; `NotFound` if there is none with this key.
pub async fn update(db: &Db, key: &str, fields: &SiteFields) -> Result<SiteRow, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            &format!(
                "UPDATE sites SET name = COALESCE($2, name), allowed_origins = COALESCE($3, allowed_origins),
                    greeting = CASE WHEN $4 THEN $5 ELSE greeting END, color = COALESCE($6, color),
                    position = COALESCE($7, position), prechat_form = COALESCE($8, prechat_form),
                    email_from = CASE WHEN $9 THEN $10 ELSE email_from END, updated_at = now()
                 WHERE key = $1 RETURNING {SITE_COLUMNS}"
            ),
            &[
                &key,
                &fields.name,
                &fields.allowed_origins,
                &fields.greeting.is_some(),
                &fields.greeting.clone().flatten(),
                &fields.color,
                &fields.position,
                &fields.prechat_form,
                &fields.email_from.is_some(),
                &fields.email_from.clone().flatten(),
            ],
        )
        .await?;
    row.as_ref().map(SiteRow::from_row).ok_or(StoreError::NotFound("site"))
}

/// Deletes a site; `NotFound` if there is none with this key.
pub async fn delete(db: &Db, key: &str) -> Result<(), StoreError> {
    let deleted = db.get().await?.execute("DELETE FROM sites WHERE key = $1", &[&key]).await?;
    if deleted == 0 {
        return Err(StoreError::NotFound("site"));
    }
    Ok(())
}
