//! Email to leads (SPEC §13): the template language and the Standard
//! Webhooks signatures that Resend's (Svix's) webhooks and our n8n
//! deliveries share. No I/O here: the store keeps templates and emails, the
//! notifier sends them, `http` takes the webhook.

pub mod render;
pub mod signature;

/// Template categories, as the API names them.
pub const CATEGORIES: &[&str] = &["general", "follow_up", "proposal", "welcome", "thank_you", "reminder", "promotion"];

/// The variables the server fills from the session and the sender; any
/// other variable a template uses is asked of the sender.
pub const KNOWN_VARIABLES: &[&str] = &["customer_name", "customer_email", "customer_phone", "agent_name", "booking_url", "site_name"];

/// The Resend tag that links its webhook events back to our email's id.
pub const EMAIL_ID_TAG: &str = "chathub_email_id";

/// Whether a lead's address looks deliverable: one `@`, something on each
/// side, no spaces or angle brackets, at most 254 characters.
pub fn valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else { return false };
    address.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !address.chars().any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
        && !domain.contains('@')
}

/// A sender: `address` or `Name <address>` (no line breaks).
pub fn valid_sender(sender: &str) -> bool {
    if sender.chars().any(|c| c.is_control()) || sender.len() > 320 {
        return false;
    }
    match sender.rsplit_once('<') {
        Some((name, rest)) => rest.strip_suffix('>').is_some_and(valid_address) && !name.contains(['<', '>', '"']),
        None => valid_address(sender),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(valid_address("ada@example.com"));
        assert!(valid_sender("Brightsmile <hello@brightsmile.example>") && valid_sender("hello@brightsmile.example"));
        assert!(!valid_sender("Eve <eve@x.org>\r\nBcc: all@x.org") && !valid_sender("Eve <eve>"));
        for bad in ["ada", "ada@", "@example.com", "a b@example.com", "ada@example", "a@b@example.com", "Ada <ada@example.com>", "ada@example.com,eve@x.org"] {
            assert!(!valid_address(bad), "{bad}");
        }
    }
}
