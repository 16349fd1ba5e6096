//! Conversation vocabulary: ids, roles, channels, statuses, and the checked
//! text of a chat message.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A conversation's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub Uuid);

impl SessionId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The staff member who wrote a message: stored by id, shown by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub id: Uuid,
    /// The display name (the username unless set).
    pub name: String,
}

/// Per-session message number: 1, 2, 3… without gaps.
pub type Seq = i64;

/// A transcript position a client sent (`last_seq`, `after_seq`, a read
/// receipt's `seq`): the newest seq it has seen, 0 for none. Parsed at the
/// edge, so nothing behind it checks for negative seqs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeenUpTo(Seq);

impl SeenUpTo {
    /// Nothing seen yet.
    pub const NOTHING: Self = Self(0);

    /// `seq` as a position; negative is refused with `code`.
    pub fn parse(seq: i64, code: &'static str, field: &str) -> Result<Self, InvalidInput> {
        if seq < 0 {
            return Err(InvalidInput::new(code, format!("{field} must not be negative")));
        }
        Ok(Self(seq))
    }

    pub fn seq(self) -> Seq {
        self.0
    }
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Who wrote a message.
    MessageRole { Visitor => "visitor", Ai => "ai", Agent => "agent", System => "system" }
);
text_enum!(
    /// Where a conversation happens.
    Channel { Web => "web", Messenger => "messenger", Whatsapp => "whatsapp", Test => "test" }
);
text_enum!(
    /// The session's workflow status (archive is a status, as in the seeds).
    SessionStatus { Active => "active", Resolved => "resolved", Escalated => "escalated", Archived => "archived" }
);
text_enum!(
    /// Who answers the visitor: the AI agent, or staff who took over.
    Handler { Ai => "ai", Human => "human" }
);
text_enum!(
    /// Derived outcome of a conversation; never stored, so never stale.
    Completion { Complete => "complete", InProgress => "in_progress", Incomplete => "incomplete" }
);
text_enum!(
    /// How urgently staff should look at a session (escalations sort by it).
    Priority { Low => "low", Normal => "normal", High => "high", Urgent => "urgent" }
);
text_enum!(
    /// QA review state.
    QaStatus { Unchecked => "unchecked", Passed => "passed", Issue => "issue", Fixed => "fixed" }
);

impl Completion {
    /// `complete` once a rule matched; else `in_progress` while the last
    /// message is younger than `inactive_after_hours`; else `incomplete`.
    pub fn derive(
        completed_at: Option<DateTime<Utc>>,
        last_activity: DateTime<Utc>,
        now: DateTime<Utc>,
        inactive_after_hours: u32,
    ) -> Self {
        if completed_at.is_some() {
            Completion::Complete
        } else if now - last_activity < chrono::Duration::hours(inactive_after_hours.into()) {
            Completion::InProgress
        } else {
            Completion::Incomplete
        }
    }
}

/// Longest `client_msg_id` accepted (wire contract).
pub const MAX_CLIENT_MSG_ID_CHARS: usize = 64;

/// Why a piece of chat input was refused; `code` goes into the error frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidInput {
    pub code: &'static str,
    pub message: String,
}

impl InvalidInput {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Chat text that is non-empty and within the length limit. It is *not*
/// sanitised: every renderer treats it as text, never HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatText(String);

impl ChatText {
    pub fn parse(text: &str, max_chars: usize) -> Result<Self, InvalidInput> {
        if text.trim().is_empty() {
            return Err(InvalidInput::new("empty_text", "message text is empty"));
        }
        if text.chars().count() > max_chars {
            return Err(InvalidInput::new(
                "text_too_long",
                format!("message text is longer than {max_chars} characters"),
            ));
        }
        if text.contains('\0') {
            return Err(InvalidInput::new("invalid_text", "message text contains a NUL character"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The sender's idempotency key for a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    pub fn parse(id: &str) -> Result<Self, InvalidInput> {
        if id.is_empty() || id.chars().count() > MAX_CLIENT_MSG_ID_CHARS || id.contains('\0') {
            return Err(InvalidInput::new(
                "invalid_client_msg_id",
                format!("client_msg_id must be 1 to {MAX_CLIENT_MSG_ID_CHARS} characters"),
            ));
        }
        Ok(Self(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Contact details a visitor gave (pre-chat form, or the agent captured).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// Longest customer name/phone kept.
const MAX_CUSTOMER_FIELD_CHARS: usize = 200;

impl Customer {
    /// Checks visitor-supplied contact details; empty strings count as absent.
    pub fn parse(name: Option<&str>, email: Option<&str>, phone: Option<&str>) -> Result<Self, InvalidInput> {
        let clean = |v: Option<&str>, field: &str| -> Result<Option<String>, InvalidInput> {
            let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(None) };
            if v.chars().count() > MAX_CUSTOMER_FIELD_CHARS || v.contains('\0') {
                return Err(InvalidInput::new("invalid_visitor", format!("visitor {field} is too long")));
            }
            Ok(Some(v.to_owned()))
        };
        let email = clean(email, "email")?;
        if let Some(e) = &email {
            if !is_valid_email(e) {
                return Err(InvalidInput::new("invalid_visitor", "visitor email is not a valid address"));
            }
        }
        Ok(Self { name: clean(name, "name")?, email, phone: clean(phone, "phone")? })
    }

    /// Fills the fields `other` knows.
    pub fn merge(&mut self, other: Customer) {
        if other.name.is_some() {
            self.name = other.name;
        }
        if other.email.is_some() {
            self.email = other.email;
        }
        if other.phone.is_some() {
            self.phone = other.phone;
        }
    }
}

/// A pragmatic address check: one `@`, a dotted domain, no spaces, ≤ 254 chars.
pub fn is_valid_email(email: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$").unwrap()
    });
    email.len() <= 254 && re.is_match(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_text_refuses_empty_and_overlong_text() {
        assert_eq!(ChatText::parse("  ", 10).unwrap_err().code, "empty_text");
        assert_eq!(ChatText::parse("12345678901", 10).unwrap_err().code, "text_too_long");
        assert_eq!(ChatText::parse("<b>hi</b>", 10).unwrap().as_str(), "<b>hi</b>");
    }

    #[test]
    fn client_msg_ids_are_bounded() {
        assert!(ClientMsgId::parse(&"x".repeat(64)).is_ok());
        assert!(ClientMsgId::parse(&"x".repeat(65)).is_err());
        assert!(ClientMsgId::parse("").is_err());
    }

    #[test]
    fn emails_are_checked() {
        assert!(is_valid_email("ada@example.com"));
        assert!(is_valid_email("a.b+c@mail.example.co.uk"));
        for bad in ["ada", "ada@", "@example.com", "ada@example", "a da@example.com", "ada@@example.com"] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn completion_is_derived_from_completion_time_and_activity() {
        let now = Utc::now();
        let hour = chrono::Duration::hours(1);
        assert_eq!(Completion::derive(Some(now), now - hour * 48, now, 12), Completion::Complete);
        assert_eq!(Completion::derive(None, now - hour * 11, now, 12), Completion::InProgress);
        assert_eq!(Completion::derive(None, now - hour * 13, now, 12), Completion::Incomplete);
    }
}
