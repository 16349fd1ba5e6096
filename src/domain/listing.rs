//! What staff ask of the session list, the stats and the export, parsed:
//! the query string (`ListQuery`) becomes a checked `SessionFilter`, and
//! `page`/`per_page` a checked `PageRequest`. The store turns these into SQL;
//! nothing here knows SQL.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use super::{Channel, Completion, InvalidInput, QaStatus, SessionStatus};

/// Largest page a list request may ask for.
pub const MAX_PER_PAGE: i64 = 200;
const DEFAULT_PER_PAGE: i64 = 50;
/// Longest search text accepted.
const MAX_SEARCH_CHARS: usize = 200;

/// Query parameters of the list, stats and export.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// First day (YYYY-MM-DD in `TIMEZONE`) or an RFC 3339 instant.
    pub from: Option<String>,
    /// Last day, inclusive (YYYY-MM-DD in `TIMEZONE`) or an RFC 3339 instant (exclusive).
    pub to: Option<String>,
    pub channel: Option<String>,
    pub completion: Option<String>,
    pub qa_status: Option<String>,
    /// A rating from 1 to 5 (sessions the customer rated so).
    pub csat: Option<String>,
    /// A status, or `all`. Without it archived sessions are left out.
    pub status: Option<String>,
    /// Text searched in the customer's name, email and phone and in the transcript.
    pub q: Option<String>,
    /// A site key.
    pub site: Option<String>,
    /// `created` (newest first, the default) or `activity` (latest message first).
    pub sort: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    /// Keyset paging: the `next_cursor` of the page before (`page` is then ignored).
    pub cursor: Option<String>,
}

/// The list's filters, checked.
#[derive(Debug, Default, Clone)]
pub struct SessionFilter {
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub channel: Option<Channel>,
    pub completion: Option<Completion>,
    pub qa_status: Option<QaStatus>,
    pub csat: Option<i16>,
    pub status: StatusFilter,
    pub search: Option<String>,
    pub site: Option<String>,
    pub order: ListOrder,
}

/// Which statuses the list shows.
#[derive(Debug, Default, Clone, Copy)]
pub enum StatusFilter {
    #[default]
    NotArchived,
    All,
    Only(SessionStatus),
}

/// How the list is sorted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum ListOrder {
    /// Newest conversation first.
    #[default]
    Created,
    /// Latest message first.
    Activity,
    /// Open escalations: most urgent priority first, then longest waiting.
    Urgency,
}

fn invalid_filter(message: impl Into<String>) -> InvalidInput {
    InvalidInput::new("invalid_filter", message)
}

fn parse_enum<T>(value: &Option<String>, field: &'static str, parse: fn(&str) -> Option<T>, allowed: &str) -> Result<Option<T>, InvalidInput> {
    match value.as_deref().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse(v).map(Some).ok_or_else(|| invalid_filter(format!("{field} must be one of {allowed}"))),
    }
}

/// Midnight at the start of `day` in `tz`, as an instant.
pub fn start_of_day(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let local = day.and_time(NaiveTime::MIN);
    tz.from_local_datetime(&local)
        .earliest()
        // Midnight skipped by a DST jump: the day starts an hour later.
        .or_else(|| tz.from_local_datetime(&(local + chrono::Duration::hours(1))).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&local))
}

fn parse_bound(value: &Option<String>, field: &'static str, tz: Tz, end_of_day: bool) -> Result<Option<DateTime<Utc>>, InvalidInput> {
    let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else { return Ok(None) };
    if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let day = if end_of_day { day.succ_opt().unwrap_or(day) } else { day };
        return Ok(Some(start_of_day(day, tz)));
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| invalid_filter(format!("{field} must be YYYY-MM-DD or an RFC 3339 time")))
}

fn parse_status(status: &Option<String>) -> Result<StatusFilter, InvalidInput> {
    Ok(match status.as_deref().filter(|v| !v.is_empty()) {
        None => StatusFilter::NotArchived,
        Some("all") => StatusFilter::All,
        Some(s) => StatusFilter::Only(
            SessionStatus::parse(s).ok_or_else(|| invalid_filter("status must be active, resolved, escalated, archived or all"))?,
        ),
    })
}

impl SessionFilter {
    /// The filter of a stats request: like the list's, but every status
    /// unless one is asked for.
    pub fn for_stats(mut query: ListQuery, tz: Tz) -> Result<Self, InvalidInput> {
        if query.status.is_none() {
            query.status = Some("all".into());
        }
        Self::parse(&query, tz)
    }

    pub fn parse(query: &ListQuery, tz: Tz) -> Result<Self, InvalidInput> {
        // PostgreSQL text cannot hold NUL: such a filter matches nothing and is refused.
        if [&query.q, &query.site, &query.from, &query.to].iter().any(|v| v.as_deref().is_some_and(|v| v.contains('\0'))) {
            return Err(invalid_filter("filters must not contain NUL characters"));
        }
        let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_owned);
        if search.as_ref().is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS) {
            return Err(invalid_filter(format!("q is longer than {MAX_SEARCH_CHARS} characters")));
        }
        let order = match query.sort.as_deref() {
            None | Some("created") => ListOrder::Created,
            Some("activity") => ListOrder::Activity,
            Some(_) => return Err(invalid_filter("sort must be created or activity")),
        };
        let filter = Self {
            from: parse_bound(&query.from, "from", tz, false)?,
            until: parse_bound(&query.to, "to", tz, true)?,
            channel: parse_enum(&query.channel, "channel", Channel::parse, "web, messenger, whatsapp, test")?,
            completion: parse_enum(&query.completion, "completion", Completion::parse, "complete, in_progress, incomplete")?,
            qa_status: parse_enum(&query.qa_status, "qa_status", QaStatus::parse, "unchecked, passed, issue, fixed")?,
            csat: match query.csat.as_deref().filter(|c| !c.is_empty()) {
                None => None,
                Some(c) => Some(c.parse::<i16>().ok().filter(|n| (1..=5).contains(n)).ok_or_else(|| invalid_filter("csat must be 1 to 5"))?),
            },
            status: parse_status(&query.status)?,
            search,
            site: query.site.clone().filter(|s| !s.is_empty()),
            order,
        };
        if let (Some(from), Some(until)) = (filter.from, filter.until) {
            if from >= until {
                return Err(invalid_filter("from must be before to"));
            }
        }
        Ok(filter)
    }

    /// The open escalations, most urgent first.
    pub fn open_escalations() -> Self {
        Self { status: StatusFilter::Only(SessionStatus::Escalated), order: ListOrder::Urgency, ..Default::default() }
    }
}

/// A checked page of a list: `page` from 1, `per_page` 1 to `MAX_PER_PAGE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: i64,
    pub per_page: i64,
}

impl PageRequest {
    pub fn parse(page: Option<i64>, per_page: Option<i64>) -> Result<Self, InvalidInput> {
        let page = page.unwrap_or(1);
        let per_page = per_page.unwrap_or(DEFAULT_PER_PAGE);
        if page < 1 {
            return Err(InvalidInput::new("invalid_page", "page starts at 1"));
        }
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(InvalidInput::new("invalid_page", format!("per_page must be 1 to {MAX_PER_PAGE}")));
        }
        // The offset, (page - 1) × per_page, must fit PostgreSQL's bigint.
        if (page - 1).checked_mul(per_page).is_none() {
            return Err(InvalidInput::new("invalid_page", "page is too large"));
        }
        Ok(Self { page, per_page })
    }

    /// Rows skipped before this page.
    pub fn offset(self) -> i64 {
        (self.page - 1) * self.per_page
    }
}

/// Keyset paging: where the next page of a list starts, as the sort key and
/// id of the last row before it. A deep page costs what the first costs
/// (no OFFSET), and rows inserted meanwhile never shift a page. Clients treat
/// it as opaque text: `c` or `a` (the sort), microseconds, `_`, the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub order: ListOrder,
    /// The last row's `created_at` (`created`) or latest activity (`activity`).
    pub at: DateTime<Utc>,
    pub id: uuid::Uuid,
}

impl Cursor {
    /// `None` for an order that has no cursor (the escalation queue is short
    /// and paged by `page`).
    pub fn after(order: ListOrder, at: DateTime<Utc>, id: uuid::Uuid) -> Option<Self> {
        (order != ListOrder::Urgency).then_some(Self { order, at, id })
    }

    pub fn encode(&self) -> String {
        let kind = if self.order == ListOrder::Activity { 'a' } else { 'c' };
        format!("{kind}{}_{}", self.at.timestamp_micros(), self.id.simple())
    }

    /// A cursor for a list sorted by `order`.
    pub fn parse(text: &str, order: ListOrder) -> Result<Self, InvalidInput> {
        let invalid = || InvalidInput::new("invalid_cursor", "cursor is not a next_cursor of this list");
        let (kind, rest) = text.split_at_checked(1).ok_or_else(invalid)?;
        let expected = if order == ListOrder::Activity { "a" } else { "c" };
        if kind != expected || order == ListOrder::Urgency {
            return Err(invalid());
        }
        let (micros, id) = rest.split_once('_').ok_or_else(invalid)?;
        let at = micros.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(invalid)?;
        let id = uuid::Uuid::try_parse(id).map_err(|_| invalid())?;
        Ok(Self { order, at, id })
    }
}

/// Where the next page of a log starts (deliveries, errors: newest first by
/// creation, then id): the last row's time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCursor {
    pub at: DateTime<Utc>,
    pub id: i64,
}

impl LogCursor {
    pub fn encode(&self) -> String {
        format!("l{}_{}", self.at.timestamp_micros(), self.id)
    }

    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let invalid = || InvalidInput::new("invalid_cursor", "cursor is not a next_cursor of this list");
        let rest = text.strip_prefix('l').ok_or_else(invalid)?;
        let (micros, id) = rest.split_once('_').ok_or_else(invalid)?;
        let at = micros.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(invalid)?;
        let id = id.parse::<i64>().map_err(|_| invalid())?;
        Ok(Self { at, id })
    }

    /// The cursor after a full page's last row (`None` after a short page:
    /// it was the last).
    pub fn after_page<T>(rows: &[T], page: PageRequest, key: impl Fn(&T) -> (DateTime<Utc>, i64)) -> Option<Self> {
        rows.last().filter(|_| rows.len() as i64 == page.per_page).map(|last| {
            let (at, id) = key(last);
            Self { at, id }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_cursors_round_trip_and_refuse_what_they_did_not_make() {
        let at = DateTime::from_timestamp_micros(1_764_633_600_123_456).unwrap();
        let cursor = LogCursor { at, id: 42 };
        assert_eq!(LogCursor::parse(&cursor.encode()).unwrap(), cursor);
        for bad in ["", "l", "c1_2", "l12_nope", "lX_3", "l99999999999999999999_1", "l1_"] {
            assert_eq!(LogCursor::parse(bad).unwrap_err().code, "invalid_cursor", "{bad:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_what_they_did_not_make() {
        let at = DateTime::from_timestamp_micros(1_764_633_600_123_456).unwrap();
        let cursor = Cursor::after(ListOrder::Created, at, uuid::Uuid::new_v4()).unwrap();
        assert_eq!(Cursor::parse(&cursor.encode(), ListOrder::Created).unwrap(), cursor);
        assert_eq!(Cursor::parse(&cursor.encode(), ListOrder::Activity).unwrap_err().code, "invalid_cursor", "another sort");
        for bad in ["", "c", "x1_00000000000000000000000000000000", "c12_nope", "cX_3f2a", "c99999999999999999999_00000000000000000000000000000000"] {
            assert_eq!(Cursor::parse(bad, ListOrder::Created).unwrap_err().code, "invalid_cursor", "{bad:?}");
        }
        assert!(Cursor::after(ListOrder::Urgency, at, uuid::Uuid::new_v4()).is_none());
    }

    #[test]
    fn pages_are_checked_and_offsets_fit() {
        assert_eq!(PageRequest::parse(None, None).unwrap(), PageRequest { page: 1, per_page: DEFAULT_PER_PAGE });
        assert_eq!(PageRequest::parse(Some(3), Some(20)).unwrap().offset(), 40);
        for (page, per_page) in [(0, 10), (1, 0), (1, MAX_PER_PAGE + 1), (i64::MAX, 200)] {
            assert_eq!(PageRequest::parse(Some(page), Some(per_page)).unwrap_err().code, "invalid_page");
        }
    }
}
