//! The wire contract of the sockets (SPEC §10): client and server frames, the
//! message object, error codes and close codes. Clients outside this
//! repository speak it, so changes here must stay backwards compatible.

use bytestring::ByteString;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Completion, MessageRole, Seq, SessionId, SessionStatus};

/// Close codes. 1xxx are RFC 6455; 4xxx are chathub's own. "Reconnect" says
/// whether a client should reconnect (with backoff) after it.
pub mod close {
    /// Server shutting down. Reconnect.
    pub const GOING_AWAY: u16 = 1001;
    /// Binary or otherwise unsupported data. Do not reconnect unchanged.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Frame larger than `WS_MAX_FRAME_BYTES`. Do not resend it.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Several nodes: the conversation moved to another node, or the node
    /// running it went away. Reconnect at once; resume with token + last seq.
    pub const MOVED: u16 = 1012;
    /// Malformed WebSocket framing.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// No `hello` within `WS_HELLO_TIMEOUT_SECS`. Reconnect and say hello.
    pub const HELLO_TIMEOUT: u16 = 4001;
    /// Nothing heard (not even a pong) within `WS_IDLE_TIMEOUT_SECS`. Reconnect.
    pub const IDLE_TIMEOUT: u16 = 4002;
    /// The conversation was deleted by staff. Start a new one.
    pub const SESSION_DELETED: u16 = 4004;
    /// The client read too slowly and its send queue filled. Reconnect and
    /// resume from the last seq seen.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// Sustained flooding past the rate limit. Reconnect after a pause.
    pub const RATE_LIMITED: u16 = 4029;
    /// The staff login ended (logout, expiry, user disabled). Sign in again.
    pub const UNAUTHORIZED: u16 = 4401;
}

/// Error codes in `{"type":"error","code"}` frames. The connection survives.
pub mod error_code {
    pub const INVALID_JSON: &str = "invalid_json";
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    pub const INVALID_FRAME: &str = "invalid_frame";
    pub const HELLO_REQUIRED: &str = "hello_required";
    pub const ALREADY_WELCOMED: &str = "already_welcomed";
    pub const INVALID_TOKEN: &str = "invalid_token";
    pub const INVALID_LAST_SEQ: &str = "invalid_last_seq";
    pub const BINARY_NOT_SUPPORTED: &str = "binary_not_supported";
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Not stored: PostgreSQL is slow or down, or the queue is full. Resend
    /// the same `client_msg_id` later.
    pub const RETRY: &str = "retry";
    pub const INTERNAL: &str = "internal";
    pub const UNKNOWN_SESSION: &str = "unknown_session";
    pub const FORBIDDEN: &str = "forbidden";
    /// A rating on a conversation that has nothing stored yet, or one
    /// rated more than 24 h ago.
    pub const CSAT_CLOSED: &str = "csat_closed";
    /// A call frame for a call this socket is not a party of, or one that
    /// is over; or a call that cannot start (no visitor online, one already
    /// running, not a web chat).
    pub const CALL_REFUSED: &str = "call_refused";
    /// An attachment id that is unknown, not this sender's, or already sent
    /// in another message. Nothing was stored.
    pub const INVALID_ATTACHMENT: &str = "invalid_attachment";
}

/// A frame from a visitor.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VisitorFrame {
    Hello {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        last_seq: Option<i64>,
        #[serde(default)]
        visitor: Option<VisitorInfo>,
    },
    Message {
        client_msg_id: String,
        /// May be empty (or left out) when `attachments` is not.
        #[serde(default)]
        text: String,
        /// Ids from `POST /api/attachments` (SPEC §12).
        #[serde(default)]
        attachments: Vec<uuid::Uuid>,
    },
    Typing {
        on: bool,
    },
    Read {
        seq: i64,
    },
    /// A video call: `accept`, `decline`, `hangup`, or `failed` (no camera,
    /// permission refused; `reason` says which) (SPEC §14).
    Call {
        call_id: uuid::Uuid,
        action: String,
        #[serde(default)]
        reason: Option<String>,
        /// What the client's getStats() said, sent with `hangup`.
        #[serde(default)]
        quality: Option<serde_json::Value>,
    },
    /// WebRTC signaling for the other party of the call (SDP, ICE).
    Signal {
        call_id: uuid::Uuid,
        data: serde_json::Value,
    },
    /// The visitor rates the conversation (SPEC §16).
    Csat {
        score: i64,
        #[serde(default)]
        comment: Option<String>,
    },
}

#[derive(Debug, Default, Deserialize)]
pub struct VisitorInfo {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// Parses a client frame, telling "not JSON" apart from "JSON of an unknown
/// type" and "a known type with bad fields".
pub fn parse_frame<T: serde::de::DeserializeOwned>(
    text: &str,
    known_types: &[&str],
) -> Result<T, (&'static str, String)> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| (error_code::INVALID_JSON, format!("not valid JSON: {e}")))?;
    let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
    if !known_types.contains(&kind.as_str()) {
        return Err((error_code::UNKNOWN_TYPE, format!("unknown frame type {kind:?}")));
    }
    serde_json::from_value(value).map_err(|e| (error_code::INVALID_FRAME, format!("bad {kind} frame: {e}")))
}

pub const VISITOR_FRAME_TYPES: &[&str] = &["hello", "message", "typing", "read", "csat", "call", "signal"];

/// The message object of the wire contract.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageView {
    pub seq: Seq,
    pub role: MessageRole,
    pub text: String,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// The staff member's display name, on `agent` messages (SPEC §11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Files sent with it (SPEC §12); absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::domain::Attachment>,
}

/// An email sent to a lead and what Resend reported about it (SPEC §13):
/// the items of a session detail's `emails`, and the `email` frame's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmailView {
    pub id: uuid::Uuid,
    pub template_id: Option<uuid::Uuid>,
    pub subject: String,
    pub to: String,
    /// `queued`, `failed`, `sent`, `delivered`, `opened`, `clicked`,
    /// `bounced` or `complained`.
    pub status: String,
    /// Resend's id for it.
    pub provider_id: Option<String>,
    pub sent_by: Option<String>,
    /// Why it failed, for `failed`.
    pub error: Option<String>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339_opt")]
    pub sent_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_opt")]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_opt")]
    pub opened_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_opt")]
    pub clicked_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_opt")]
    pub bounced_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_opt")]
    pub complained_at: Option<DateTime<Utc>>,
    pub open_count: i32,
    pub click_count: i32,
    pub clicked_links: Vec<String>,
}

/// A frame from the server. Serialised once per event and shared by all
/// recipients (see `encode`).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Welcome { session_id: SessionId, token: &'a str, messages: &'a [MessageView] },
    Ack { client_msg_id: &'a str, seq: Seq },
    Message { message: &'a MessageView },
    Typing { role: MessageRole, on: bool },
    /// The AI's answer so far, while an OpenAI-compatible agent streams it
    /// (an extra: clients may ignore it and wait for the `message`).
    Partial { role: MessageRole, text: &'a str },
    Status { completion: Completion, status: SessionStatus },
    /// Staff have read the visitor's messages up to `seq` (`by: "agent"`).
    Read { by: MessageRole, seq: Seq },
    /// A video call: `ring` (with `from`), `ended`, `missed`, `resumed`.
    Call {
        call_id: uuid::Uuid,
        action: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a str>,
    },
    Signal { call_id: uuid::Uuid, data: &'a serde_json::Value },
    Error {
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
    },
}

impl ServerFrame<'_> {
    /// JSON text, ready to share between sockets (cloning is a refcount bump).
    pub fn encode(&self) -> ByteString {
        ByteString::from(serde_json::to_string(self).expect("server frames always serialise"))
    }
}

/// A frame from a staff dashboard.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DashboardFrame {
    Watch {
        session_id: SessionId,
        #[serde(default)]
        last_seq: i64,
    },
    Unwatch {
        session_id: SessionId,
    },
    Say {
        session_id: SessionId,
        client_msg_id: String,
        #[serde(default)]
        text: String,
        #[serde(default)]
        attachments: Vec<uuid::Uuid>,
    },
    Takeover {
        session_id: SessionId,
        on: bool,
    },
    Typing {
        session_id: SessionId,
        on: bool,
    },
    /// The transcript is on screen up to `seq`.
    Read {
        session_id: SessionId,
        seq: i64,
    },
    /// A video call: `start`, or `hangup` of `call_id` (SPEC §14).
    Call {
        session_id: SessionId,
        action: String,
        #[serde(default)]
        call_id: Option<uuid::Uuid>,
        #[serde(default)]
        quality: Option<serde_json::Value>,
    },
    Signal {
        session_id: SessionId,
        call_id: uuid::Uuid,
        data: serde_json::Value,
    },
    /// Push the stats of these filters (the query parameters of
    /// `GET /api/sessions/stats`, as strings) whenever they change.
    Stats {
        filters: serde_json::Map<String, serde_json::Value>,
    },
}

pub const DASHBOARD_FRAME_TYPES: &[&str] = &["watch", "unwatch", "say", "takeover", "typing", "read", "call", "signal", "stats"];

/// A frame to a staff dashboard.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StaffFrame<'a> {
    SessionDeleted { session_id: SessionId },
    Message { session_id: SessionId, message: &'a MessageView },
    /// An email of the session was queued or its tracking moved.
    Email { session_id: SessionId, email: &'a EmailView },
    /// The visitor has read the conversation up to `seq` (`by: "visitor"`).
    Read { session_id: SessionId, by: MessageRole, seq: Seq },
    /// Messenger/WhatsApp reported our reply `seq` `delivered`, `read` or `failed`.
    Delivery { session_id: SessionId, seq: Seq, status: &'a str },
    Typing { session_id: SessionId, role: crate::domain::MessageRole, on: bool },
    /// (extra) The AI-health card: this node's last `minutes` minutes.
    AiHealth { health: &'a crate::domain::AiHealthReport },
    /// A video call of the session: `ringing`, `accepted`, `declined`,
    /// `missed`, `ended`, `failed` (with `reason`), `resumed`.
    Call {
        session_id: SessionId,
        call_id: uuid::Uuid,
        action: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
    },
    Signal { session_id: SessionId, call_id: uuid::Uuid, data: &'a serde_json::Value },
    /// A replay moved on (`running`) or finished (`done`), with its summary.
    Replay { id: uuid::Uuid, status: &'a str, summary: &'a serde_json::Value },
    /// The stats of the filters a `stats` frame asked for, as
    /// `GET /api/sessions/stats` answers them.
    Stats { filters: &'a serde_json::Value, stats: &'a serde_json::Value },
    /// An AI-health threshold was crossed (SPEC §16).
    AiAlert { metric: &'a str, value: f64, max: f64, minutes: i32 },
    Ack { session_id: SessionId, client_msg_id: &'a str, seq: Seq },
    Takeover { session_id: SessionId, handler: crate::domain::Handler },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        session_id: Option<SessionId>,
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
    },
}

/// `{"type":"session","session":{…}}`: a session was created or changed.
/// `summary` is the list's summary of it (`GET /api/sessions` items); any
/// serialisable shape, so this floor needs nothing from the data layer.
pub fn session_frame(summary: &impl Serialize) -> ByteString {
    #[derive(Serialize)]
    struct SessionFrame<'a, S: Serialize> {
        r#type: &'static str,
        session: &'a S,
    }
    ByteString::from(serde_json::to_string(&SessionFrame { r#type: "session", session: summary }).expect("summaries always serialise"))
}

impl StaffFrame<'_> {
    pub fn encode(&self) -> ByteString {
        ByteString::from(serde_json::to_string(self).expect("staff frames always serialise"))
    }

    pub fn error(session_id: SessionId, code: &str, message: &str, client_msg_id: Option<&str>) -> ByteString {
        StaffFrame::Error { session_id: Some(session_id), code, message, client_msg_id }.encode()
    }
}

pub fn error_frame(code: &str, message: &str, client_msg_id: Option<&str>) -> ByteString {
    ServerFrame::Error { code, message, client_msg_id }.encode()
}

/// RFC 3339 UTC with milliseconds, the one time format on the wire.
pub mod rfc3339 {
    use super::*;

    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// `None` stays `None` (JSON `null`).
    pub fn format_opt(t: Option<DateTime<Utc>>) -> Option<String> {
        t.as_ref().map(format)
    }

    pub fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }
}

/// `Option<DateTime<Utc>>` as RFC 3339 UTC or `null`.
pub mod rfc3339_opt {
    use super::*;

    pub fn serialize<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&rfc3339::format(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_told_apart_by_failure_kind() {
        let parse = |t: &str| parse_frame::<VisitorFrame>(t, VISITOR_FRAME_TYPES).map_err(|e| e.0);
        assert_eq!(parse("{nope").unwrap_err(), error_code::INVALID_JSON);
        assert_eq!(parse(r#"{"type":"shout"}"#).unwrap_err(), error_code::UNKNOWN_TYPE);
        assert_eq!(parse(r#"{"type":"message","text":"hi"}"#).unwrap_err(), error_code::INVALID_FRAME);
        assert!(matches!(parse(r#"{"type":"hello","token":null,"last_seq":0}"#), Ok(VisitorFrame::Hello { .. })));
    }

    #[test]
    fn server_frames_match_the_wire_contract() {
        let message = MessageView {
            seq: 3,
            role: MessageRole::Ai,
            text: "hi".into(),
            created_at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z").unwrap().with_timezone(&Utc),
            author: None,
            attachments: Vec::new(),
        };
        let json: serde_json::Value = serde_json::from_str(&ServerFrame::Message { message: &message }.encode()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type":"message","message":{"seq":3,"role":"ai","text":"hi","created_at":"2026-01-02T03:04:05.678Z"}})
        );
        let ack: serde_json::Value = serde_json::from_str(&ServerFrame::Ack { client_msg_id: "c1", seq: 4 }.encode()).unwrap();
        assert_eq!(ack, serde_json::json!({"type":"ack","client_msg_id":"c1","seq":4}));
    }
}
