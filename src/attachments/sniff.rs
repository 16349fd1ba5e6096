//! The type of an uploaded file, read from its first bytes: the name and
//! the request's `Content-Type` are the sender's claim and never trusted.

/// Every type the sniffer can recognise (what `ATTACHMENT_TYPES` may list).
pub const KNOWN_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"];

/// The content type of `bytes`, or `None` if it is none of `KNOWN_TYPES`.
/// Plain text is valid UTF-8 without NUL or other control characters but
/// tab, line feed, carriage return and form feed (so a script or an HTML
/// page is still text, and is served as `text/plain` with `nosniff`).
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
    ];
    if let Some((_, kind)) = SIGNATURES.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return Some(kind);
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    let text = std::str::from_utf8(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes)).ok()?;
    let clean = text.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\u{c}'));
    (!bytes.is_empty() && clean).then_some("text/plain")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a\x01\0"), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"%PDF-1.7\n"), Some("application/pdf"));
        assert_eq!(sniff("Grüße\r\n\tbonjour".as_bytes()), Some("text/plain"));
    }

    #[test]
    fn anything_else_is_unknown() {
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0"), None, "a Windows executable");
        assert_eq!(sniff(b"PK\x03\x04"), None, "a zip file");
        assert_eq!(sniff(b"\xff\xfe\0\0"), None, "not UTF-8");
        assert_eq!(sniff(b"abc\0def"), None, "text with NUL");
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"RIFF\x24\0\0\0WAVE"), None, "a WAV file is RIFF but not WebP");
    }
}
