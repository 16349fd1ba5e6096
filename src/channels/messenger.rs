//! Messenger webhook payloads: `{"object":"page","entry":[{"messaging":[…]}]}`.
//! Text messages, quick replies and postbacks become visitor messages;
//! attachments become a short placeholder text; echoes of the page's own
//! messages, deliveries and reads are ignored.

use serde_json::Value;

use super::Inbound;
use super::media::MediaRef;

/// Parses a webhook body into visitor messages, in Meta's order.
/// The `read` events of a batch (`{"sender":{"id"},"read":{"watermark"}}`).
pub fn receipts(body: &Value) -> Vec<super::Receipt> {
    let events = body.get("entry").and_then(Value::as_array).into_iter().flatten().flat_map(|e| e.get("messaging").and_then(Value::as_array).into_iter().flatten());
    events
        .filter_map(|event| {
            let sender = event.pointer("/sender/id").and_then(Value::as_str)?;
            let watermark_ms = event.pointer("/read/watermark").and_then(Value::as_i64)?;
            Some(super::Receipt::ReadUpTo { sender: sender.to_owned(), watermark_ms })
        })
        .collect()
}

pub fn parse(body: &Value) -> Result<Vec<Inbound>, &'static str> {
    if body.get("object").and_then(Value::as_str) != Some("page") {
        return Err("object must be \"page\"");
    }
    let entries = body.get("entry").and_then(Value::as_array).ok_or("entry must be an array")?;
    let mut out = Vec::new();
    for entry in entries {
        for event in entry.get("messaging").and_then(Value::as_array).into_iter().flatten() {
            let Some(sender) = event.pointer("/sender/id").and_then(Value::as_str) else { continue };
            let sent_at_ms = event.get("timestamp").and_then(Value::as_i64).unwrap_or(0);
            if let Some(message) = event.get("message") {
                if message.get("is_echo").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                let Some(mid) = message.get("mid").and_then(Value::as_str) else { continue };
                let media = media_of(message);
                let text = message
                    .get("text")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| message.pointer("/quick_reply/payload").and_then(Value::as_str).map(str::to_owned))
                    .or_else(|| if media.is_empty() { attachment_placeholder(message) } else { Some(String::new()) });
                if let Some(text) = text.filter(|t| !t.trim().is_empty() || !media.is_empty()) {
                    out.push(Inbound { sender: sender.to_owned(), message_id: mid.to_owned(), text, media, name: None, sent_at_ms });
                }
            } else if let Some(postback) = event.get("postback") {
                let text = postback
                    .get("title")
                    .and_then(Value::as_str)
                    .or_else(|| postback.get("payload").and_then(Value::as_str))
                    .unwrap_or("(button)");
                // Postbacks carry an mid on current API versions; older ones do not.
                let id = postback
                    .get("mid")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("postback:{sender}:{}", event.get("timestamp").and_then(Value::as_i64).unwrap_or(0)));
                out.push(Inbound { sender: sender.to_owned(), message_id: id, text: text.to_owned(), media: vec![], name: None, sent_at_ms });
            }
            // delivery, read, reaction and other events are not messages.
        }
    }
    Ok(out)
}

/// The files of a message: image, file, video and audio attachments carry
/// a `payload.url` to download (stickers and shares are left as text).
fn media_of(message: &Value) -> Vec<MediaRef> {
    let attachments = message.get("attachments").and_then(Value::as_array).into_iter().flatten();
    attachments
        .filter(|a| matches!(a.get("type").and_then(Value::as_str), Some("image" | "file" | "video" | "audio")))
        .filter(|a| a.pointer("/payload/sticker_id").is_none())
        .filter_map(|a| {
            let url = a.pointer("/payload/url").and_then(Value::as_str)?;
            let kind = a.get("type").and_then(Value::as_str).unwrap_or("file");
            Some(MediaRef::Url { url: url.to_owned(), kind: kind.to_owned(), name: a.pointer("/payload/title").and_then(Value::as_str).map(str::to_owned) })
        })
        .collect()
}

fn attachment_placeholder(message: &Value) -> Option<String> {
    let attachments = message.get("attachments")?.as_array()?;
    let kinds: Vec<&str> = attachments.iter().filter_map(|a| a.get("type").and_then(Value::as_str)).collect();
    Some(format!("[attachment: {}]", if kinds.is_empty() { "file".to_owned() } else { kinds.join(", ") }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meta_payload_shapes_become_visitor_messages() {
        let body = json!({"object": "page", "entry": [
            {"id": "PAGE", "time": 1, "messaging": [
                {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE"}, "timestamp": 1, "message": {"mid": "m1", "text": "hello"}},
                {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE"}, "timestamp": 2, "message": {"mid": "m2", "text": "Yes", "quick_reply": {"payload": "YES"}}},
                {"sender": {"id": "PAGE"}, "recipient": {"id": "PSID1"}, "timestamp": 3, "message": {"mid": "m3", "text": "echo", "is_echo": true}},
                {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE"}, "timestamp": 4, "delivery": {"mids": ["m3"], "watermark": 4}},
                {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE"}, "timestamp": 5, "read": {"watermark": 5}},
            ]},
            {"id": "PAGE", "time": 2, "messaging": [
                {"sender": {"id": "PSID2"}, "recipient": {"id": "PAGE"}, "timestamp": 6, "message": {"mid": "m4", "attachments": [{"type": "image", "payload": {"url": "https://x"}}]}},
                {"sender": {"id": "PSID2"}, "recipient": {"id": "PAGE"}, "timestamp": 7, "postback": {"mid": "m5", "title": "Get started", "payload": "START"}},
            ]},
        ]});
        let parsed = parse(&body).unwrap();
        let summary: Vec<(&str, &str, &str)> = parsed.iter().map(|m| (m.sender.as_str(), m.message_id.as_str(), m.text.as_str())).collect();
        assert_eq!(
            summary,
            vec![("PSID1", "m1", "hello"), ("PSID1", "m2", "Yes"), ("PSID2", "m4", ""), ("PSID2", "m5", "Get started")]
        );
        assert_eq!(parsed[2].media, vec![MediaRef::Url { url: "https://x".into(), kind: "image".into(), name: None }]);
        assert!(parse(&json!({"object": "instagram", "entry": []})).is_err());
        assert!(parse(&json!({"object": "page"})).is_err());
    }
}
