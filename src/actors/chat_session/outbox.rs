//! Completion rules and the notifications a message queues with it: the
//! `lead.completed` event and replies out to Messenger and WhatsApp, each an
//! outbox row committed in the same transaction as its cause.

use super::*;

impl ChatSession {
    /// The `lead.completed` event. The notifier adds the transcript when it
    /// delivers (it is committed by then), so the row stays small.
    pub(super) fn lead_completed(&self, rule: &str, at: DateTime<Utc>) -> OutboxRow {
        OutboxRow {
            event_type: "lead.completed",
            payload: json!({
                "session_id": self.id,
                "channel": self.channel,
                "site_id": self.site_id,
                "customer": self.customer,
                "rule": rule,
                "completed_at": crate::protocol::rfc3339::format(&at),
            }),
            idempotency_key: format!("lead.completed/{}", self.id),
        }
    }

    /// The outbox row that carries a reply out to Messenger or WhatsApp
    /// (committed with the message, retried by the notifier).
    pub(super) fn outgoing(&self, text: &str, attachments: &[Attachment]) -> Option<OutboxRow> {
        let event_type = match self.channel {
            Channel::Messenger => "messenger.send",
            Channel::Whatsapp => "whatsapp.send",
            _ => return None,
        };
        if self.relay {
            return None;
        }
        let recipient = self.external_id.as_deref()?;
        Some(OutboxRow {
            event_type,
            payload: json!({ "session_id": self.id, "recipient": recipient, "text": text, "attachments": attachments }),
            idempotency_key: format!("{event_type}/{}", Uuid::new_v4()),
        })
    }

    /// Runs the completion rules on an AI or staff message; a match completes
    /// the conversation with this message's write.
    pub(super) fn check_completion(&mut self, text: &str, patch: &mut SessionPatch, outbox: &mut Vec<OutboxRow>) {
        if self.completed_at.is_some() {
            return;
        }
        if let Some(rule) = self.hub.rules.current().first_match(text) {
            let now = Utc::now();
            self.completed_at = Some(now);
            self.completion_rule = Some(rule.to_owned());
            patch.completion = Some((rule.to_owned(), now));
            outbox.push(self.lead_completed(rule, now));
            metrics::counter!("chathub_completions_total").increment(1);
        }
    }
}
