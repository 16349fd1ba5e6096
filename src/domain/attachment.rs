//! Files sent in a conversation (SPEC §12): the attachment as messages carry
//! it, the checks on its name, and the body of a message that may carry
//! files as well as (or instead of) text.

use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

use super::chat::{ChatText, InvalidInput};

/// Most files one message may carry.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;
/// Longest file name kept, in characters (the extension is kept when cut).
pub const MAX_FILE_NAME_CHARS: usize = 120;

/// A stored file, as every message object carries it. Serialised with its
/// `url` (`/api/attachments/{id}`, on the hub's own origin).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attachment {
    pub id: Uuid,
    pub name: String,
    /// Sniffed from the bytes when stored, never taken from the uploader.
    pub content_type: String,
    pub size: i64,
}

impl Attachment {
    pub fn url(&self) -> String {
        format!("/api/attachments/{}", self.id)
    }

    /// Shown inline (`<img>`); everything else is a download.
    pub fn is_image(&self) -> bool {
        self.content_type.starts_with("image/")
    }
}

impl Serialize for Attachment {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            id: Uuid,
            name: &'a str,
            content_type: &'a str,
            size: i64,
            url: String,
        }
        Wire { id: self.id, name: &self.name, content_type: &self.content_type, size: self.size, url: self.url() }.serialize(serializer)
    }
}

/// A file name as given by an uploader or a channel, made safe to show and
/// to put in a `Content-Disposition` header: the last path component only,
/// no control characters, no leading dots, at most `MAX_FILE_NAME_CHARS`
/// (keeping the extension), `file` if nothing is left.
pub fn clean_file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut name: String = last.chars().filter(|c| !c.is_control() && !matches!(c, '"' | '\u{202e}' | '\u{202d}')).collect();
    name = name.trim().trim_start_matches('.').trim().to_owned();
    if name.chars().count() > MAX_FILE_NAME_CHARS {
        let ext: String = match name.rsplit_once('.') {
            Some((_, ext)) if (1..=10).contains(&ext.chars().count()) => format!(".{ext}"),
            _ => String::new(),
        };
        let keep = MAX_FILE_NAME_CHARS - ext.chars().count();
        name = name.chars().take(keep).collect::<String>() + &ext;
    }
    if name.is_empty() { "file".to_owned() } else { name }
}

/// What a message says: its text and the files sent with it. The text may
/// be empty only when files come with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody {
    text: String,
    attachments: Vec<Attachment>,
}

impl MessageBody {
    /// Text alone.
    pub fn plain(text: ChatText) -> Self {
        Self { text: text.into_string(), attachments: Vec::new() }
    }

    /// Text (checked as `ChatText`, but empty allowed) with files.
    pub fn parse(text: &str, attachments: Vec<Attachment>, max_chars: usize) -> Result<Self, InvalidInput> {
        if attachments.is_empty() {
            return ChatText::parse(text, max_chars).map(Self::plain);
        }
        if attachments.len() > MAX_ATTACHMENTS_PER_MESSAGE {
            return Err(InvalidInput::new("too_many_attachments", format!("a message carries at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments")));
        }
        let text = if text.trim().is_empty() { String::new() } else { ChatText::parse(text, max_chars)?.into_string() };
        Ok(Self { text, attachments })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    pub fn into_parts(self) -> (String, Vec<Attachment>) {
        (self.text, self.attachments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_paths_control_characters_and_length() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\Users\\ada\\photo.png"), "photo.png");
        assert_eq!(clean_file_name("a\u{0}b\nc\u{202e}gnp.exe"), "abcgnp.exe");
        assert_eq!(clean_file_name("..."), "file");
        assert_eq!(clean_file_name(".htaccess"), "htaccess");
        let long = format!("{}.pdf", "x".repeat(300));
        let cut = clean_file_name(&long);
        assert_eq!(cut.chars().count(), MAX_FILE_NAME_CHARS);
        assert!(cut.ends_with(".pdf"));
    }

    #[test]
    fn a_body_needs_text_unless_files_come_with_it() {
        let file = Attachment { id: Uuid::nil(), name: "a.png".into(), content_type: "image/png".into(), size: 3 };
        assert_eq!(MessageBody::parse(" ", vec![], 10).unwrap_err().code, "empty_text");
        assert_eq!(MessageBody::parse(" ", vec![file.clone()], 10).unwrap().text(), "");
        assert_eq!(MessageBody::parse("x".repeat(11).as_str(), vec![file.clone()], 10).unwrap_err().code, "text_too_long");
        assert_eq!(MessageBody::parse("", vec![file; 11], 10).unwrap_err().code, "too_many_attachments");
    }

    #[test]
    fn an_attachment_serialises_with_its_url() {
        let file = Attachment { id: Uuid::nil(), name: "a.png".into(), content_type: "image/png".into(), size: 3 };
        let json = serde_json::to_value(&file).unwrap();
        assert_eq!(json["url"], format!("/api/attachments/{}", Uuid::nil()));
        assert_eq!(serde_json::from_value::<Attachment>(json).unwrap(), file);
    }
}
