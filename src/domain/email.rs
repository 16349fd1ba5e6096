//! Email tracking as the store and the webhook share it: the statuses in
//! order and what each Resend event does (SPEC §13).

/// Email statuses from first to last. Webhook events move an email only to
/// a later one, so events that arrive out of order never move it back.
pub const STATUS_ORDER: &[&str] = &["queued", "failed", "sent", "delivered", "opened", "clicked", "bounced", "complained"];

/// What a Resend webhook event does to an email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracking {
    Sent,
    Delivered,
    Opened,
    Clicked,
    Bounced,
    Complained,
}

impl Tracking {
    /// The event's `type`; `None` for events we do not track
    /// (`email.delivery_delayed`, `email.scheduled`, …).
    pub fn of_event(event_type: &str) -> Option<Self> {
        Some(match event_type {
            "email.sent" => Self::Sent,
            "email.delivered" => Self::Delivered,
            "email.opened" => Self::Opened,
            "email.clicked" => Self::Clicked,
            "email.bounced" => Self::Bounced,
            "email.complained" => Self::Complained,
            _ => return None,
        })
    }

    /// The status this event moves an email to (if it is further along).
    pub fn status(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Opened => "opened",
            Self::Clicked => "clicked",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
        }
    }
}

/// Where `status` stands in `STATUS_ORDER` (unknown: before the first).
pub fn status_rank(status: &str) -> usize {
    STATUS_ORDER.iter().position(|s| *s == status).unwrap_or(0)
}

/// The status after an event: the event's own if it is further along, else
/// the current one (events arrive out of order; a status never goes back).
pub fn status_after(current: &str, event: Tracking) -> &str {
    if status_rank(event.status()) > status_rank(current) { event.status() } else { current }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward() {
        assert_eq!(status_after("queued", Tracking::Delivered), "delivered");
        assert_eq!(status_after("opened", Tracking::Delivered), "opened");
        assert_eq!(status_after("clicked", Tracking::Opened), "clicked");
        assert_eq!(status_after("delivered", Tracking::Bounced), "bounced");
        assert_eq!(status_after("failed", Tracking::Sent), "sent");
    }
}
