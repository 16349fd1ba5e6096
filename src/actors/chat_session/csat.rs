//! Asking Messenger and WhatsApp customers for a rating (SPEC §16): one
//! text question when the conversation is resolved or completes; a reply of
//! 1–5 is their rating (recognised in `enqueue_keyed`), thanked once. The
//! widget asks with its own buttons and sends a `csat` frame instead.

use super::*;

pub(super) const QUESTION: &str = "How did we do? Reply with a number from 1 (poor) to 5 (great).";
pub(super) const THANKS: &str = "Thank you for your rating!";

/// A system message about the rating, due once the current write is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RatingPrompt {
    Ask,
    Thank,
}

impl ChatSession {
    /// Customers of this conversation are asked by text (not a relayed bot's).
    fn asks_by_text(&self) -> bool {
        matches!(self.channel, Channel::Messenger | Channel::Whatsapp) && !self.relay && self.external_id.is_some()
    }

    /// Asks once per conversation, if nobody has rated it yet.
    pub(super) fn ask_for_rating(&mut self, ctx: &mut Context<Self>) {
        if !self.asks_by_text() || self.csat_asked || self.csat_given {
            return;
        }
        self.csat_asked = true;
        let patch = SessionPatch { csat_asked: true, ..Default::default() };
        self.enqueue_reply(MessageRole::System, QUESTION.to_owned(), Origin::System, patch, ctx);
    }

    /// Sends the prompt a stored message made due (a completion, a rating).
    pub(super) fn send_due_prompt(&mut self, ctx: &mut Context<Self>) {
        match self.rating_prompt.take() {
            Some(RatingPrompt::Ask) => self.ask_for_rating(ctx),
            Some(RatingPrompt::Thank) => self.enqueue_reply(MessageRole::System, THANKS.to_owned(), Origin::System, SessionPatch::default(), ctx),
            None => {}
        }
    }
}
