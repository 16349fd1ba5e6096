//! WhatsApp Cloud API webhook payloads:
//! `{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[…],"contacts":[…]}}]}]}`.
//! Text, button and interactive replies become visitor messages; media
//! becomes a placeholder; `statuses` (sent/delivered/read) are ignored.

use serde_json::Value;

use super::Inbound;
use super::media::MediaRef;

/// Message types whose file is fetched by media id.
const MEDIA_TYPES: &[&str] = &["image", "document", "audio", "video", "sticker"];

/// The `statuses` of a batch that move our replies on: `delivered`,
/// `read`, `failed` (`sent` is what we already know).
pub fn receipts(body: &Value) -> Vec<super::Receipt> {
    let changes = body.get("entry").and_then(Value::as_array).into_iter().flatten().flat_map(|e| e.get("changes").and_then(Value::as_array).into_iter().flatten());
    changes
        .flat_map(|change| change.pointer("/value/statuses").and_then(Value::as_array).into_iter().flatten())
        .filter_map(|status| {
            let id = status.get("id").and_then(Value::as_str)?;
            let state = status.get("status").and_then(Value::as_str).filter(|s| ["delivered", "read", "failed"].contains(s))?;
            Some(super::Receipt::Status { message_id: id.to_owned(), status: state.to_owned() })
        })
        .collect()
}

pub fn parse(body: &Value) -> Result<Vec<Inbound>, &'static str> {
    if body.get("object").and_then(Value::as_str) != Some("whatsapp_business_account") {
        return Err("object must be \"whatsapp_business_account\"");
    }
    let entries = body.get("entry").and_then(Value::as_array).ok_or("entry must be an array")?;
    let mut out = Vec::new();
    for change in entries.iter().flat_map(|e| e.get("changes").and_then(Value::as_array).into_iter().flatten()) {
        let Some(value) = change.get("value") else { continue };
        let contacts = value.get("contacts").and_then(Value::as_array);
        for message in value.get("messages").and_then(Value::as_array).into_iter().flatten() {
            let (Some(from), Some(id)) = (message.get("from").and_then(Value::as_str), message.get("id").and_then(Value::as_str)) else {
                continue;
            };
            // WhatsApp sends seconds since the epoch, as a string.
            let sent_at_ms = message.get("timestamp").and_then(Value::as_str).and_then(|t| t.parse::<i64>().ok()).map_or(0, |t| t.saturating_mul(1000));
            let kind = message.get("type").and_then(Value::as_str).unwrap_or("unknown");
            let media: Vec<MediaRef> = MEDIA_TYPES
                .contains(&kind)
                .then(|| message.get(kind))
                .flatten()
                .and_then(|m| {
                    let id = m.get("id").and_then(Value::as_str)?;
                    Some(MediaRef::WhatsApp { id: id.to_owned(), kind: kind.to_owned(), name: m.get("filename").and_then(Value::as_str).map(str::to_owned) })
                })
                .into_iter()
                .collect();
            let text = match kind {
                _ if !media.is_empty() => Some(message.pointer(&format!("/{kind}/caption")).and_then(Value::as_str).unwrap_or_default().to_owned()),
                "text" => message.pointer("/text/body").and_then(Value::as_str).map(str::to_owned),
                "button" => message.pointer("/button/text").and_then(Value::as_str).map(str::to_owned),
                "interactive" => message
                    .pointer("/interactive/button_reply/title")
                    .or_else(|| message.pointer("/interactive/list_reply/title"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                other => Some(format!("[attachment: {other}]")),
            };
            let name = contacts
                .and_then(|c| c.iter().find(|c| c.get("wa_id").and_then(Value::as_str) == Some(from)))
                .and_then(|c| c.pointer("/profile/name"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(text) = text.filter(|t| !t.trim().is_empty() || !media.is_empty()) {
                out.push(Inbound { sender: from.to_owned(), message_id: id.to_owned(), text, media, name, sent_at_ms });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cloud_api_payload_shapes_become_visitor_messages() {
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "PNID"},
            "contacts": [{"profile": {"name": "Ada"}, "wa_id": "4479"}],
            "messages": [
                {"from": "4479", "id": "wamid.1", "timestamp": "1", "type": "text", "text": {"body": "hi"}},
                {"from": "4479", "id": "wamid.2", "timestamp": "2", "type": "image", "image": {"id": "media"}},
                {"from": "4479", "id": "wamid.3", "timestamp": "3", "type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "b", "title": "Book"}}},
            ],
            "statuses": [{"id": "wamid.0", "status": "read", "recipient_id": "4479"}],
        }}]}]});
        let parsed = parse(&body).unwrap();
        let summary: Vec<(&str, &str)> = parsed.iter().map(|m| (m.message_id.as_str(), m.text.as_str())).collect();
        assert_eq!(summary, vec![("wamid.1", "hi"), ("wamid.2", ""), ("wamid.3", "Book")]);
        assert_eq!(parsed[1].media, vec![MediaRef::WhatsApp { id: "media".into(), kind: "image".into(), name: None }]);
        assert_eq!(parsed[0].name.as_deref(), Some("Ada"));
    }
}
