//! Completion rules: named patterns (substring, URL prefix, regex) checked on
//! every AI and staff message. The first enabled rule that matches marks the
//! conversation complete. Rules are rows in `completion_rules`; this module
//! compiles them and answers "which rule fires for this text?".

use std::sync::{Arc, RwLock};

use regex::{Regex, RegexBuilder};

use crate::postgres::Db;

/// Bounds the compiled size of an admin-typed regex (linear-time engine, but
/// a huge program still costs memory and time per message).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// `{BOOKING_URL}` in a stored pattern expands to the configured booking URL.
pub const BOOKING_URL_PLACEHOLDER: &str = "{BOOKING_URL}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Substring,
    UrlPrefix,
    Regex,
}

impl RuleKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "substring" => Some(Self::Substring),
            "url_prefix" => Some(Self::UrlPrefix),
            "regex" => Some(Self::Regex),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Matcher {
    /// Lower-cased needle; matching ignores case.
    Substring(String),
    /// Lower-cased prefix; matches a URL in the text that starts with it.
    UrlPrefix(String),
    Regex(Regex),
}

#[derive(Debug)]
pub struct Rule {
    pub name: String,
    matcher: Matcher,
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("unknown rule kind {0:?}: expected substring, url_prefix or regex")]
    UnknownKind(String),
    #[error("the pattern is empty")]
    Empty,
    #[error("invalid regex: {0}")]
    BadRegex(String),
}

impl Rule {
    /// Compiles one rule; `booking_url` replaces the placeholder.
    pub fn compile(name: &str, kind: &str, pattern: &str, booking_url: &str) -> Result<Self, RuleError> {
        let kind = RuleKind::parse(kind).ok_or_else(|| RuleError::UnknownKind(kind.to_owned()))?;
        let pattern = pattern.replace(BOOKING_URL_PLACEHOLDER, booking_url);
        if pattern.trim().is_empty() {
            return Err(RuleError::Empty);
        }
        let matcher = match kind {
            RuleKind::Substring => Matcher::Substring(pattern.to_lowercase()),
            RuleKind::UrlPrefix => Matcher::UrlPrefix(pattern.to_lowercase()),
            RuleKind::Regex => Matcher::Regex(
                RegexBuilder::new(&pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| RuleError::BadRegex(e.to_string()))?,
            ),
        };
        Ok(Self { name: name.to_owned(), matcher })
    }

    pub fn matches(&self, text: &str) -> bool {
        match &self.matcher {
            Matcher::Substring(needle) => text.to_lowercase().contains(needle.as_str()),
            Matcher::UrlPrefix(prefix) => {
                let lower = text.to_lowercase();
                lower.match_indices(prefix.as_str()).any(|(at, _)| {
                    // Only at the start of a URL token, not inside another URL.
                    lower[..at].chars().next_back().is_none_or(|c| c.is_whitespace() || "(<\"'[:,".contains(c))
                })
            }
            Matcher::Regex(re) => re.is_match(text),
        }
    }
}

/// The enabled rules, in order.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { rules }
    }

    /// The name of the first rule that matches `text`.
    pub fn first_match(&self, text: &str) -> Option<&str> {
        self.rules.iter().find(|r| r.matches(text)).map(|r| r.name.as_str())
    }

    /// Loads and compiles the enabled rules. A rule that no longer compiles
    /// is skipped with a warning rather than stopping every other rule.
    pub async fn load(db: &Db, booking_url: &str) -> anyhow::Result<Self> {
        let rows = crate::store::rules::enabled(db).await?;
        let mut rules = Vec::with_capacity(rows.len());
        for (name, kind, pattern) in rows {
            match Rule::compile(&name, &kind, &pattern, booking_url) {
                Ok(rule) => rules.push(rule),
                Err(e) => tracing::warn!(rule = %name, error = %e, "skipping a completion rule that does not compile"),
            }
        }
        Ok(Self { rules })
    }
}

/// The live rule set, swapped whole when admins edit rules.
#[derive(Default)]
pub struct Rules(RwLock<Arc<RuleSet>>);

impl Rules {
    pub fn new(set: RuleSet) -> Self {
        Self(RwLock::new(Arc::new(set)))
    }

    pub fn current(&self) -> Arc<RuleSet> {
        self.0.read().expect("rules lock").clone()
    }

    pub fn replace(&self, set: RuleSet) {
        *self.0.write().expect("rules lock") = Arc::new(set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKING: &str = "https://cal.example.com/book";

    fn defaults() -> RuleSet {
        RuleSet::new(vec![
            Rule::compile("booking_link", "url_prefix", "{BOOKING_URL}", BOOKING).unwrap(),
            Rule::compile("callback_24h", "substring", "within 24 hours", BOOKING).unwrap(),
        ])
    }

    #[test]
    fn the_default_rules_match_the_booking_link_and_the_callback_promise() {
        let rules = defaults();
        assert_eq!(rules.first_match("Book here: https://cal.example.com/book/ada"), Some("booking_link"));
        assert_eq!(rules.first_match("We will call you WITHIN 24 HOURS."), Some("callback_24h"));
        assert_eq!(rules.first_match("What is your name?"), None);
    }

    #[test]
    fn a_url_prefix_only_matches_at_the_start_of_a_url() {
        let rules = defaults();
        assert_eq!(rules.first_match("see https://evil.example/?u=https://cal.example.com/book"), None);
        assert_eq!(rules.first_match("(https://cal.example.com/book)"), Some("booking_link"));
    }

    #[test]
    fn regex_rules_compile_with_a_size_limit_and_bad_ones_are_refused() {
        let rule = Rule::compile("order", "regex", r"order #\d{5}", BOOKING).unwrap();
        assert!(rule.matches("your order #12345 is confirmed"));
        assert!(matches!(Rule::compile("bad", "regex", "(", BOOKING), Err(RuleError::BadRegex(_))));
        assert!(matches!(Rule::compile("huge", "regex", r"\w{1000}{1000}", BOOKING), Err(RuleError::BadRegex(_))));
        assert!(matches!(Rule::compile("x", "glob", "*", BOOKING), Err(RuleError::UnknownKind(_))));
    }
}
