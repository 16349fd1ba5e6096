//! `completion_rules`: the named rules checked on every AI and staff
//! message. (The fire counter is bumped by the persistence actor's batch,
//! with the completion it records.)

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use crate::postgres::Db;
use crate::protocol::rfc3339_opt;

/// A rule as admins see it, with how often it fired.
#[derive(Debug, Serialize)]
pub struct RuleRow {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub pattern: String,
    pub enabled: bool,
    pub position: i32,
    pub fire_count: i64,
    #[serde(with = "rfc3339_opt")]
    pub last_fired_at: Option<DateTime<Utc>>,
}

const RULE_COLUMNS: &str = "id, name, kind, pattern, enabled, position, fire_count, last_fired_at";

impl RuleRow {
    fn from_row(r: &tokio_postgres::Row) -> Self {
        Self {
            id: r.get(0),
            name: r.get(1),
            kind: r.get(2),
            pattern: r.get(3),
            enabled: r.get(4),
            position: r.get(5),
            fire_count: r.get(6),
            last_fired_at: r.get(7),
        }
    }
}

/// Every rule, in the order they are checked.
pub async fn list(db: &Db) -> Result<Vec<RuleRow>, StoreError> {
    let rows = db.get().await?.query(&format!("SELECT {RULE_COLUMNS} FROM completion_rules ORDER BY position, name"), &[]).await?;
    Ok(rows.iter().map(RuleRow::from_row).collect())
}

/// The enabled rules' name, kind and pattern, in the order they are checked.
pub async fn enabled(db: &Db) -> Result<Vec<(String, String, String)>, StoreError> {
    let rows = db
        .get()
        .await?
        .query("SELECT name, kind, pattern FROM completion_rules WHERE enabled ORDER BY position, name", &[])
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// A rule's definition.
pub struct RuleFields<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub pattern: &'a str,
    /// `None` keeps the current value (or `true` on insert).
    pub enabled: Option<bool>,
    /// `None` keeps the current value (or `100`, last, on insert).
    pub position: Option<i32>,
}

fn name_taken(name: &str) -> StoreError {
    StoreError::Conflict(format!("a rule named {name:?} exists"))
}

/// Stores a new rule; `Conflict` if the name is taken.
pub async fn insert(db: &Db, rule: &RuleFields<'_>) -> Result<RuleRow, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            &format!(
                "INSERT INTO completion_rules (id, name, kind, pattern, enabled, position)
                 VALUES ($1, $2, $3, $4, COALESCE($5, true), COALESCE($6, 100))
                 ON CONFLICT (name) DO NOTHING RETURNING {RULE_COLUMNS}"
            ),
            &[&Uuid::new_v4(), &rule.name, &rule.kind, &rule.pattern, &rule.enabled, &rule.position],
        )
        .await?;
    row.as_ref().map(RuleRow::from_row).ok_or_else(|| name_taken(rule.name))
}

/// A rule's current name, kind and pattern (what an edit starts from).
pub async fn definition(db: &Db, id: Uuid) -> Result<(String, String, String), StoreError> {
    let row = db.get().await?.query_opt("SELECT name, kind, pattern FROM completion_rules WHERE id = $1", &[&id]).await?;
    row.map(|r| (r.get(0), r.get(1), r.get(2))).ok_or(StoreError::NotFound("rule"))
}

/// Replaces a rule's definition; `Conflict` if the new name is taken.
pub async fn update(db: &Db, id: Uuid, rule: &RuleFields<'_>) -> Result<RuleRow, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            &format!(
                "UPDATE completion_rules SET name = $2, kind = $3, pattern = $4, enabled = COALESCE($5, enabled),
                    position = COALESCE($6, position), updated_at = now() WHERE id = $1 RETURNING {RULE_COLUMNS}"
            ),
            &[&id, &rule.name, &rule.kind, &rule.pattern, &rule.enabled, &rule.position],
        )
        .await
        .map_err(|e| match e.code() {
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => name_taken(rule.name),
            _ => e.into(),
        })?;
    row.as_ref().map(RuleRow::from_row).ok_or(StoreError::NotFound("rule"))
}

/// Deletes a rule; `NotFound` if there is none with this id.
pub async fn delete(db: &Db, id: Uuid) -> Result<(), StoreError> {
    let deleted = db.get().await?.execute("DELETE FROM completion_rules WHERE id = $1", &[&id]).await?;
    if deleted == 0 {
        return Err(StoreError::NotFound("rule"));
    }
    Ok(())
}
