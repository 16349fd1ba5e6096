//! Files customers send on Messenger and WhatsApp (SPEC §12), fetched
//! through the Graph API so they land in our own store like any upload.
//! Messenger hands a download URL in the webhook; WhatsApp a media id,
//! which `GET {GRAPH_API_URL}/{id}` (with the token) turns into a URL that
//! is downloaded with the token again. Downloads stop at `MAX_UPLOAD_BYTES`.

use serde_json::Value;

use crate::config::Config;

/// A file named in a webhook, not yet fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaRef {
    /// Messenger: `attachments[].payload.url` (`kind`: image, file, video, audio).
    Url { url: String, kind: String, name: Option<String> },
    /// WhatsApp: a media id (`kind`: image, document, audio, video, sticker).
    WhatsApp { id: String, kind: String, name: Option<String> },
}

impl MediaRef {
    pub fn kind(&self) -> &str {
        match self {
            MediaRef::Url { kind, .. } | MediaRef::WhatsApp { kind, .. } => kind,
        }
    }
}

/// A downloaded file: the name to show and its bytes.
pub struct Fetched {
    pub name: String,
    pub bytes: bytes::Bytes,
}

/// Downloads `media` (at most `max_bytes`). The error says why, for the
/// placeholder text and the log.
pub async fn fetch(http: &reqwest::Client, config: &Config, media: &MediaRef, max_bytes: usize) -> Result<Fetched, String> {
    let graph = config.graph_api_url.trim_end_matches('/');
    match media {
        MediaRef::Url { url, kind, name } => {
            // Only Meta's CDN (https) or the configured Graph API host: the
            // webhook is signed, but a URL is still not fetched blindly.
            if !(url.starts_with("https://") || url.starts_with(&format!("{graph}/"))) {
                return Err(format!("refused to fetch {kind} from a non-https URL"));
            }
            let bytes = download(http.get(url), max_bytes).await?;
            let from_url = url.split(['?', '#']).next().unwrap_or_default().rsplit('/').next().filter(|n| n.contains('.'));
            Ok(Fetched { name: name.clone().or(from_url.map(str::to_owned)).unwrap_or_else(|| kind.clone()), bytes })
        }
        MediaRef::WhatsApp { id, kind, name } => {
            let token = config.whatsapp_token.as_deref().ok_or("WHATSAPP_TOKEN is not set")?;
            let info = http.get(format!("{graph}/{id}")).bearer_auth(token).send().await.map_err(|e| format!("media lookup failed: {e}"))?;
            if !info.status().is_success() {
                return Err(format!("media lookup answered {}", info.status()));
            }
            let info: Value = info.json().await.map_err(|e| format!("media lookup: {e}"))?;
            let url = info.get("url").and_then(Value::as_str).ok_or("media lookup gave no url")?;
            let bytes = download(http.get(url).bearer_auth(token), max_bytes).await?;
            Ok(Fetched { name: name.clone().unwrap_or_else(|| kind.clone()), bytes })
        }
    }
}

/// The body of a GET, refused past `max_bytes` without reading it all.
async fn download(request: reqwest::RequestBuilder, max_bytes: usize) -> Result<bytes::Bytes, String> {
    let mut response = request.send().await.map_err(|e| format!("download failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("download answered {}", response.status()));
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("download failed: {e}"))? {
        if body.len() + chunk.len() > max_bytes {
            return Err(format!("the file is larger than {max_bytes} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
