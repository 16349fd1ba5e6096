//! The customer's rating of a conversation (SPEC §16): a score from 1 to 5
//! and an optional comment, checked at the edge.

use super::chat::InvalidInput;

/// Longest comment kept with a rating.
pub const MAX_CSAT_COMMENT_CHARS: usize = 1000;

/// A checked rating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csat {
    pub score: i16,
    /// Trimmed; `None` when empty.
    pub comment: Option<String>,
}

impl Csat {
    pub fn parse(score: i64, comment: Option<&str>) -> Result<Self, InvalidInput> {
        if !(1..=5).contains(&score) {
            return Err(InvalidInput::new("invalid_csat", "score must be a whole number from 1 to 5"));
        }
        let comment = comment.map(str::trim).filter(|c| !c.is_empty());
        if comment.is_some_and(|c| c.chars().count() > MAX_CSAT_COMMENT_CHARS || c.contains('\0')) {
            return Err(InvalidInput::new("invalid_csat", format!("comment must be at most {MAX_CSAT_COMMENT_CHARS} characters")));
        }
        Ok(Self { score: score as i16, comment: comment.map(str::to_owned) })
    }

    /// A Messenger/WhatsApp answer to the rating question: the message is
    /// just a digit from 1 to 5 (spaces, a trailing "/5" or "." allowed).
    pub fn from_reply(text: &str) -> Option<Self> {
        let t = text.trim().trim_end_matches('.').trim_end_matches("/5").trim();
        let score: i64 = t.parse().ok()?;
        Self::parse(score, None).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_run_from_one_to_five() {
        assert_eq!(Csat::parse(5, Some("  great  ")).unwrap(), Csat { score: 5, comment: Some("great".into()) });
        assert_eq!(Csat::parse(1, Some(" ")).unwrap().comment, None);
        for bad in [0, 6, -1] {
            assert_eq!(Csat::parse(bad, None).unwrap_err().code, "invalid_csat");
        }
        assert!(Csat::parse(3, Some(&"x".repeat(1001))).is_err());
    }

    #[test]
    fn a_channel_reply_counts_only_when_it_is_a_score() {
        assert_eq!(Csat::from_reply(" 4 ").map(|c| c.score), Some(4));
        assert_eq!(Csat::from_reply("5/5").map(|c| c.score), Some(5));
        assert_eq!(Csat::from_reply("3.").map(|c| c.score), Some(3));
        for not_a_score in ["6", "0", "4 stars, thanks", "hello", ""] {
            assert_eq!(Csat::from_reply(not_a_score), None, "{not_a_score}");
        }
    }
}
