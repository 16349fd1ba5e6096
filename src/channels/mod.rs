//! Inbound channels other than the widget: Meta's Messenger and WhatsApp
//! webhooks. This module owns what is specific to Meta: the signature over
//! the raw body, the verification handshake and the payload shapes. The
//! HTTP handlers (`http::webhooks`) feed what they parse to the
//! conversation actors like any other visitor message.

pub mod media;
pub mod messenger;
pub mod whatsapp;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Largest webhook body accepted (Meta batches, but never this much).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// Checks `X-Hub-Signature-256: sha256=<hex>`: HMAC-SHA256 of the raw body
/// keyed with the app secret, compared in constant time. The raw bytes are
/// what Meta signed; re-serialised JSON would not match.
pub fn verify_signature(app_secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else { return false };
    let Ok(signature) = hex::decode(hex_sig) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// The signature Meta would send for `body` (for tests and tools).
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The GET handshake: `hub.mode=subscribe` with the right token echoes the
/// challenge. Constant-time token comparison.
pub fn verify_subscription(expected: Option<&str>, mode: Option<&str>, token: Option<&str>) -> bool {
    match (expected, mode, token) {
        (Some(expected), Some("subscribe"), Some(token)) => bool::from(expected.as_bytes().ct_eq(token.as_bytes())),
        _ => false,
    }
}

/// What a channel reports about our replies (SPEC §12).
#[derive(Debug, Clone, PartialEq)]
pub enum Receipt {
    /// Messenger `read.watermark`: everything sent to `sender` before
    /// `watermark_ms` (ms since the epoch) was read.
    ReadUpTo { sender: String, watermark_ms: i64 },
    /// WhatsApp `statuses[]`: our message `message_id` is now `status`
    /// (`delivered`, `read` or `failed`; `sent` is what we already know).
    Status { message_id: String, status: String },
}

/// One visitor message from a channel, ready for the conversation actor.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The sender's id on the channel (PSID, wa_id): the conversation key.
    pub sender: String,
    /// The channel's message id (mid, wamid): the dedupe key.
    pub message_id: String,
    /// May be empty when `media` is not (a photo without a caption).
    pub text: String,
    /// Files sent with it, to fetch through the Graph API (`media`).
    pub media: Vec<media::MediaRef>,
    /// A display name when the channel tells us one.
    pub name: Option<String>,
    /// When the channel says it was sent (ms since the epoch; 0 if it does
    /// not say). A batch is stored in this order, then in payload order.
    pub sent_at_ms: i64,
}

/// A batch's messages grouped by sender, each group in the order the
/// sender wrote them: by the channel's timestamp, then by position in the
/// payload (Meta does not promise to send them in order).
pub fn by_sender_in_order(mut messages: Vec<Inbound>) -> Vec<Vec<Inbound>> {
    // A stable sort keeps payload order between equal timestamps.
    messages.sort_by_key(|m| m.sent_at_ms);
    let mut groups: Vec<Vec<Inbound>> = Vec::new();
    for message in messages {
        match groups.iter_mut().find(|g| g[0].sender == message.sender) {
            Some(group) => group.push(message),
            None => groups.push(vec![message]),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_grouped_by_sender_in_timestamp_then_payload_order() {
        let m = |sender: &str, id: &str, at: i64| Inbound { sender: sender.into(), message_id: id.into(), text: id.into(), media: vec![], name: None, sent_at_ms: at };
        let groups = by_sender_in_order(vec![m("a", "a3", 30), m("b", "b1", 5), m("a", "a1", 10), m("a", "a2", 10), m("a", "a0", 0)]);
        let ids: Vec<Vec<&str>> = groups.iter().map(|g| g.iter().map(|m| m.message_id.as_str()).collect()).collect();
        assert_eq!(ids, vec![vec!["a0", "a1", "a2", "a3"], vec!["b1"]]);
    }

    #[test]
    fn signatures_are_checked_over_the_raw_body() {
        let body = br#"{"object":"page","entry":[]}"#;
        let header = sign("app-secret", body);
        assert!(verify_signature("app-secret", body, Some(&header)));
        assert!(!verify_signature("other-secret", body, Some(&header)));
        assert!(!verify_signature("app-secret", br#"{"object": "page", "entry": []}"#, Some(&header)), "re-serialised");
        assert!(!verify_signature("app-secret", body, None));
        assert!(!verify_signature("app-secret", body, Some(header.trim_start_matches("sha256="))));
        assert!(!verify_signature("app-secret", body, Some("sha256=zz")));
        assert!(!verify_signature("app-secret", body, Some(&header[..header.len() - 2])));
    }

    #[test]
    fn the_subscription_handshake_needs_the_mode_and_the_token() {
        assert!(verify_subscription(Some("t0k"), Some("subscribe"), Some("t0k")));
        assert!(!verify_subscription(Some("t0k"), Some("subscribe"), Some("nope")));
        assert!(!verify_subscription(Some("t0k"), Some("unsubscribe"), Some("t0k")));
        assert!(!verify_subscription(None, Some("subscribe"), Some("")));
    }
}
