//! The built-in demo agent: a fixed lead-generation script, so a fresh
//! install works offline and tests can rely on every word. It keeps no state
//! of its own: where it is in the script follows from the transcript.
//!
//! 1. First reply: greets and asks for the visitor's name. What the pre-chat
//!    form gave is not asked again: with a name it asks for the email, with
//!    a name and a valid email its first reply is the booking reply.
//! 2. Next: thanks them by name and asks for their email address.
//! 3. After a valid email: offers the booking link and promises a reply
//!    "within 24 hours" (both match the default completion rules). An invalid
//!    email gets the question again.
//! 4. Afterwards: a short closing line.
//!
//! At any point, asking for a "human", an "agent" or a "real person"
//! escalates the conversation instead.

use futures_util::future::{BoxFuture, FutureExt};

use super::{Agent, AgentError, AgentReply, AgentRequest};
use crate::domain::{Customer, MessageRole, is_valid_email};

/// Words that ask for a person.
const ESCALATION_PHRASES: &[&str] = &["human", "agent", "real person"];
/// Marks the script's questions, so the next step can be found in history.
const ASK_NAME: &str = "what's your name?";
const ASK_EMAIL: &str = "email address";
/// Longest name taken from a message.
const MAX_NAME_CHARS: usize = 80;

pub struct DemoAgent {
    booking_url: String,
}

impl DemoAgent {
    pub fn new(booking_url: String) -> Self {
        Self { booking_url }
    }

    fn answer(&self, request: &AgentRequest) -> AgentReply {
        let message = request.message.trim();
        if wants_a_human(message) {
            return AgentReply {
                text: "Of course — I'm handing you over to a member of our team. Someone will be with you shortly."
                    .into(),
                escalate: true,
                ..Default::default()
            };
        }
        let last_ai = request
            .history
            .iter()
            .rev()
            .find(|m| m.role == MessageRole::Ai)
            .map(|m| m.text.to_lowercase());
        let known_name = request.customer.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
        let known_email = request.customer.email.as_deref().filter(|e| is_valid_email(e));
        match last_ai {
            // What the pre-chat form already gave is not asked again.
            None => match (known_name, known_email) {
                (Some(name), Some(_)) => self.booking(name),
                (Some(name), None) => AgentReply {
                    text: format!("Hi {name}! I'm the virtual assistant and I can get you booked in. What's the best email address to reach you?"),
                    ..Default::default()
                },
                _ => AgentReply {
                    text: "Hi there! I'm the virtual assistant and I can get you booked in. To get started, what's your name?".into(),
                    ..Default::default()
                },
            },
            Some(q) if q.contains(ASK_NAME) => {
                let name = extract_name(message);
                AgentReply {
                    text: format!("Nice to meet you, {name}! What's the best email address to reach you?"),
                    customer: Some(Customer { name: Some(name), ..Default::default() }),
                    ..Default::default()
                }
            }
            Some(q) if q.contains(ASK_EMAIL) => match message.split_whitespace().find(|w| w.contains('@')) {
                Some(candidate) if is_valid_email(candidate.trim_matches(|c: char| ",;.!?<>()".contains(c))) => {
                    let email = candidate.trim_matches(|c: char| ",;.!?<>()".contains(c)).to_owned();
                    AgentReply {
                        customer: Some(Customer { email: Some(email), ..Default::default() }),
                        ..self.booking(known_name.unwrap_or("there"))
                    }
                }
                _ => AgentReply {
                    text: "Hmm, that doesn't look like a valid email address. Could you check it? (for example: name@example.com)".into(),
                    ..Default::default()
                },
            },
            Some(_) => AgentReply {
                text: "Thanks again! Is there anything else I can help you with? If you'd like to talk to a person, just say \"human\".".into(),
                ..Default::default()
            },
        }
    }
}

impl Agent for DemoAgent {
    fn name(&self) -> &'static str {
        "demo"
    }

    fn reply(&self, request: AgentRequest) -> BoxFuture<'static, Result<AgentReply, AgentError>> {
        let reply = self.answer(&request);
        async move { Ok(reply) }.boxed()
    }

    fn answer_now(&self, request: &AgentRequest) -> Option<AgentReply> {
        Some(self.answer(request))
    }
}

impl DemoAgent {
    /// The script's goal: the booking link and the promise of a reply
    /// "within 24 hours" (both match the default completion rules).
    fn booking(&self, name: &str) -> AgentReply {
        AgentReply {
            text: format!(
                "Thanks, {name}! You can pick a time that suits you here: {} — and a member of our team will get back to you within 24 hours.",
                self.booking_url
            ),
            ..Default::default()
        }
    }
}

fn wants_a_human(message: &str) -> bool {
    let lower = message.to_lowercase();
    ESCALATION_PHRASES.iter().any(|phrase| {
        lower
            .match_indices(phrase)
            .any(|(at, m)| {
                let before = lower[..at].chars().next_back();
                let after = lower[at + m.len()..].chars().next();
                // Whole words only: "agenda" or "humane" do not escalate.
                !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(|c| c.is_alphanumeric() && c != 's')
            })
    })
}

/// "My name is Ada Lovelace." → "Ada Lovelace".
fn extract_name(message: &str) -> String {
    let lower = message.to_lowercase();
    let mut name = message;
    for prefix in ["my name is ", "i'm ", "i am ", "it's ", "this is ", "name: "] {
        if lower.starts_with(prefix) {
            name = &message[prefix.len()..];
            break;
        }
    }
    let name: String = name.trim().trim_end_matches(['.', '!']).chars().take(MAX_NAME_CHARS).collect();
    if name.is_empty() { "there".into() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::HistoryItem;
    use crate::domain::{Channel, SessionId};

    fn ask(agent: &DemoAgent, history: &[(MessageRole, &str)], customer: Customer) -> AgentReply {
        let history: Vec<HistoryItem> =
            history.iter().map(|(role, text)| HistoryItem { role: *role, text: (*text).into() }).collect();
        let request = AgentRequest {
            session_id: SessionId::new(),
            channel: Channel::Web,
            message: history.last().unwrap().text.clone(),
            history,
            customer,
            partials: None,
        };
        agent.answer(&request)
    }

    #[test]
    fn the_script_asks_name_then_email_then_offers_the_booking_link() {
        use MessageRole::*;
        let agent = DemoAgent::new("https://cal.example.com/book".into());
        let first = ask(&agent, &[(Visitor, "Hello")], Customer::default());
        assert!(first.text.contains("what's your name?"));

        let second = ask(&agent, &[(Visitor, "Hello"), (Ai, &first.text), (Visitor, "My name is Ada.")], Customer::default());
        assert!(second.text.contains("email address"));
        assert_eq!(second.customer.unwrap().name.as_deref(), Some("Ada"));

        let history = [(Visitor, "Hello"), (Ai, first.text.as_str()), (Visitor, "Ada"), (Ai, second.text.as_str())];
        let mut bad = history.to_vec();
        bad.push((Visitor, "not-an-email"));
        assert!(ask(&agent, &bad, Customer::default()).text.contains("valid email address"));

        let mut good = history.to_vec();
        good.push((Visitor, "sure, ada@example.com."));
        let customer = Customer { name: Some("Ada".into()), ..Default::default() };
        let third = ask(&agent, &good, customer);
        assert!(third.text.contains("https://cal.example.com/book"));
        assert!(third.text.contains("within 24 hours"));
        assert_eq!(third.customer.unwrap().email.as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn what_the_pre_chat_form_gave_is_not_asked_again() {
        use MessageRole::*;
        let agent = DemoAgent::new("https://cal.example.com/book".into());
        let both = Customer { name: Some("Grace".into()), email: Some("grace@example.com".into()), ..Default::default() };
        let first = ask(&agent, &[(Visitor, "Hello")], both);
        assert!(first.text.contains("https://cal.example.com/book") && first.text.contains("within 24 hours") && first.text.contains("Grace"));

        let name_only = Customer { name: Some("Grace".into()), ..Default::default() };
        let first = ask(&agent, &[(Visitor, "Hello")], name_only.clone());
        assert!(first.text.contains("email address") && !first.text.contains("what's your name?"));
        let next = ask(&agent, &[(Visitor, "Hello"), (Ai, &first.text), (Visitor, "grace@example.com")], name_only);
        assert!(next.text.contains("Thanks, Grace!") && next.text.contains("within 24 hours"));

        let bad_email = Customer { name: Some("Grace".into()), email: Some("nope".into()), ..Default::default() };
        assert!(ask(&agent, &[(Visitor, "Hello")], bad_email).text.contains("email address"));
    }

    #[test]
    fn asking_for_a_person_escalates_but_similar_words_do_not() {
        for text in ["I want a human", "can I talk to an agent?", "Real person please", "HUMANS only"] {
            assert!(wants_a_human(text), "{text}");
        }
        for text in ["what's on the agenda", "a humane answer", "agentic AI"] {
            assert!(!wants_a_human(text), "{text}");
        }
    }
}
