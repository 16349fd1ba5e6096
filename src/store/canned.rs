//! `canned_responses`: the replies staff insert by typing `/shortcut`.

use uuid::Uuid;
use serde::Serialize;

use super::StoreError;
use crate::postgres::Db;

#[derive(Debug, Serialize)]
pub struct CannedRow {
    pub id: Uuid,
    pub shortcut: String,
    pub title: String,
    pub text: String,
}

/// A canned response's fields.
pub struct CannedFields<'a> {
    pub shortcut: &'a str,
    pub title: &'a str,
    pub text: &'a str,
}

fn from_row(r: &tokio_postgres::Row) -> CannedRow {
    CannedRow { id: r.get(0), shortcut: r.get(1), title: r.get(2), text: r.get(3) }
}

/// A shortcut taken by another response.
fn taken(e: tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        StoreError::Conflict("that shortcut is taken".into())
    } else {
        e.into()
    }
}

/// Every response, by shortcut.
pub async fn list(db: &Db) -> Result<Vec<CannedRow>, StoreError> {
    let rows = db.get().await?.query("SELECT id, shortcut, title, text FROM canned_responses ORDER BY shortcut", &[]).await?;
    Ok(rows.iter().map(from_row).collect())
}

pub async fn insert(db: &Db, fields: &CannedFields<'_>) -> Result<CannedRow, StoreError> {
    let row = db
        .get()
        .await?
        .query_one(
            "INSERT INTO canned_responses (id, shortcut, title, text) VALUES ($1, $2, $3, $4) RETURNING id, shortcut, title, text",
            &[&Uuid::new_v4(), &fields.shortcut, &fields.title, &fields.text],
        )
        .await
        .map_err(taken)?;
    Ok(from_row(&row))
}

pub async fn update(db: &Db, id: Uuid, fields: &CannedFields<'_>) -> Result<CannedRow, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            "UPDATE canned_responses SET shortcut = $2, title = $3, text = $4, updated_at = now() WHERE id = $1
             RETURNING id, shortcut, title, text",
            &[&id, &fields.shortcut, &fields.title, &fields.text],
        )
        .await
        .map_err(taken)?
        .ok_or(StoreError::NotFound("canned response"))?;
    Ok(from_row(&row))
}

pub async fn delete(db: &Db, id: Uuid) -> Result<(), StoreError> {
    let deleted = db.get().await?.execute("DELETE FROM canned_responses WHERE id = $1", &[&id]).await?;
    if deleted == 0 { Err(StoreError::NotFound("canned response")) } else { Ok(()) }
}
