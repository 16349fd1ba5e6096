//! Where attachment bytes live (SPEC §12): an `object_store` behind one
//! small interface, a local directory under the data dir by default or any
//! S3-compatible store with `ATTACHMENTS_URL=s3://bucket/prefix`. Objects
//! are keyed by the attachment's id alone; which conversation may read one
//! is the `attachments` table's business (`store::attachments`).

mod sniff;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use uuid::Uuid;

pub use sniff::{KNOWN_TYPES, sniff};

use crate::config::Config;
use crate::domain::{Attachment, InvalidInput, MAX_ATTACHMENTS_PER_MESSAGE, MessageBody};
use crate::postgres::Db;
use crate::store::StoreError;
use crate::store::attachments::Sender;

/// The attachment store and the upload rules.
pub struct AttachmentStore {
    store: Arc<dyn ObjectStore>,
    /// Content types accepted (`ATTACHMENT_TYPES`).
    allowed: Vec<String>,
    pub max_bytes: usize,
    /// `local` or `s3`, for logs and `/health`.
    pub kind: &'static str,
}

impl AttachmentStore {
    /// Opens the store `ATTACHMENTS_URL` names (creating the local directory).
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        let settings = &config.attachments;
        let allowed: Vec<String> = settings.types.split(',').map(|t| t.trim().to_ascii_lowercase()).filter(|t| !t.is_empty()).collect();
        if let Some(unknown) = allowed.iter().find(|t| !KNOWN_TYPES.contains(&t.as_str())) {
            anyhow::bail!("ATTACHMENT_TYPES names {unknown:?}, which chathub cannot recognise from a file's bytes (known: {})", KNOWN_TYPES.join(", "));
        }
        let (store, kind): (Arc<dyn ObjectStore>, _) = match settings.url.as_deref() {
            Some(url) if url.starts_with("s3://") => {
                let bucket_end = url["s3://".len()..].find('/').map(|i| i + "s3://".len()).unwrap_or(url.len());
                let prefix = url[bucket_end..].trim_matches('/');
                let s3 = AmazonS3Builder::from_env().with_url(&url[..bucket_end]).build().context("ATTACHMENTS_URL: opening the S3 store")?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix)) };
                (store, "s3")
            }
            Some(url) if url.starts_with("file://") => (Arc::new(local(std::path::Path::new(&url["file://".len()..]))?) as _, "local"),
            Some(url) => anyhow::bail!("ATTACHMENTS_URL must start with s3:// or file:// (got {url:?})"),
            None => (Arc::new(local(&config.data_dir.join("attachments"))?) as _, "local"),
        };
        Ok(Self { store, allowed, max_bytes: settings.max_upload_bytes, kind })
    }

    /// The content type of `bytes` if it is one the hub accepts.
    pub fn accepted_type(&self, bytes: &[u8]) -> Option<&'static str> {
        sniff(bytes).filter(|t| self.allowed.iter().any(|a| a == t))
    }

    /// The types accepted (`ATTACHMENT_TYPES`).
    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }

    pub async fn put(&self, id: Uuid, bytes: Bytes) -> anyhow::Result<()> {
        self.store.put(&key(id), PutPayload::from_bytes(bytes)).await.context("storing an attachment")?;
        Ok(())
    }

    /// The object of `id`; `None` if the store has no such object.
    async fn object(&self, id: Uuid) -> anyhow::Result<Option<object_store::GetResult>> {
        match self.store.get(&key(id)).await {
            Ok(found) => Ok(Some(found)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).context("reading an attachment"),
        }
    }

    /// The bytes of `id` as a stream (a download holds one chunk at a
    /// time, not the file); `None` if the store has no such object.
    pub async fn stream(&self, id: Uuid) -> anyhow::Result<Option<futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>>> {
        Ok(self.object(id).await?.map(object_store::GetResult::into_stream))
    }

    /// The bytes of `id`; `None` if the store has no such object.
    pub async fn get(&self, id: Uuid) -> anyhow::Result<Option<Bytes>> {
        match self.object(id).await? {
            Some(found) => Ok(Some(found.bytes().await.context("reading an attachment")?)),
            None => Ok(None),
        }
    }

    /// Deletes the objects of `ids` (already gone from the table). A failure
    /// is logged, never returned: the rows are what grants access, so a
    /// leftover object is unreachable.
    pub async fn delete(&self, ids: &[Uuid]) {
        for id in ids {
            match self.store.delete(&key(*id)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!(attachment = %id, error = %e, "could not delete an attachment's bytes"),
            }
        }
    }
}

/// Uploads removed per sweep query.
const SWEEP_BATCH: i64 = 500;

impl AttachmentStore {
    /// Deletes every upload never sent in a message within `ttl`: rows
    /// first, then their objects. Returns how many went.
    pub async fn remove_unsent(&self, db: &Db, ttl: Duration) -> Result<usize, StoreError> {
        let mut removed = 0;
        loop {
            let ids = crate::store::attachments::remove_unsent(db, ttl.as_secs_f64(), SWEEP_BATCH).await?;
            self.delete(&ids).await;
            removed += ids.len();
            if (ids.len() as i64) < SWEEP_BATCH {
                return Ok(removed);
            }
        }
    }

    /// Sweeps unsent uploads every quarter of `ttl` (at most every 10
    /// minutes) until `stop` turns true. Every node may run it: each row is
    /// deleted once.
    pub async fn sweep_unsent(self: Arc<Self>, db: Db, ttl: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let every = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|&down| down) => return,
            }
            match self.remove_unsent(&db, ttl).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed uploads that were never sent"),
                Err(e) => tracing::warn!(error = %e, "could not sweep unsent uploads"),
            }
        }
    }
}

/// Why a file was not stored.
#[derive(Debug, thiserror::Error)]
pub enum NotStored {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not one of the accepted types ({0})")]
    UnsupportedType(String),
    #[error("storing the file failed: {0:#}")]
    Unavailable(anyhow::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new file for the store: where it belongs and who sent it.
pub struct Upload {
    /// As given (cleaned here).
    pub name: String,
    pub bytes: Bytes,
    /// The visitor's conversation, or `None` for a staff upload.
    pub session_id: Option<Uuid>,
    /// The staff member uploading.
    pub uploaded_by: Option<Uuid>,
}

impl AttachmentStore {
    /// Sniffs, stores the bytes, then the row (the object is removed again
    /// if the row cannot be written). The caller checked the size.
    pub async fn store_new(&self, db: &Db, upload: Upload) -> Result<Attachment, NotStored> {
        if upload.bytes.is_empty() {
            return Err(NotStored::Empty);
        }
        let content_type = self.accepted_type(&upload.bytes).ok_or_else(|| NotStored::UnsupportedType(self.allowed.join(", ")))?;
        let attachment = Attachment {
            id: Uuid::new_v4(),
            name: crate::domain::clean_file_name(&upload.name),
            content_type: content_type.to_owned(),
            size: upload.bytes.len() as i64,
        };
        self.put(attachment.id, upload.bytes).await.map_err(NotStored::Unavailable)?;
        let row = crate::store::attachments::NewAttachment { attachment: &attachment, session_id: upload.session_id, uploaded_by: upload.uploaded_by };
        if let Err(e) = crate::store::attachments::insert(db, row).await {
            self.delete(&[attachment.id]).await;
            return Err(e.into());
        }
        metrics::counter!("chathub_attachments_stored_total").increment(1);
        Ok(attachment)
    }
}

/// Why a message's attachments cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum Unsendable {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The attachments `ids` (duplicates dropped) for a message `sender` sends
/// with `client_msg_id` in `session_id`: every one must be theirs and not
/// yet in another message (`invalid_attachment` otherwise, naming none of
/// them, so ids cannot be probed).
pub async fn sendable(db: &Db, ids: &[Uuid], session_id: Uuid, sender: Sender, client_msg_id: &str) -> Result<Vec<Attachment>, Unsendable> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut unique = ids.to_vec();
    let mut seen = std::collections::HashSet::new();
    unique.retain(|id| seen.insert(*id));
    if unique.len() > MAX_ATTACHMENTS_PER_MESSAGE {
        return Err(InvalidInput::new("too_many_attachments", format!("a message carries at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments")).into());
    }
    let found = crate::store::attachments::sendable(db, &unique, session_id, sender, client_msg_id).await?;
    if found.len() != unique.len() {
        return Err(InvalidInput::new(crate::protocol::error_code::INVALID_ATTACHMENT, "an attachment is unknown, not yours, or already sent").into());
    }
    Ok(found)
}

/// A message's checked body: `text` with the attachments `ids` that
/// `sender` may send (see `sendable`); the text may be empty only with files.
pub async fn message_body(
    db: &Db,
    text: &str,
    ids: &[Uuid],
    to: (Uuid, Sender),
    client_msg_id: &str,
    max_chars: usize,
) -> Result<MessageBody, Unsendable> {
    let (session_id, sender) = to;
    let attachments = sendable(db, ids, session_id, sender, client_msg_id).await?;
    Ok(MessageBody::parse(text, attachments, max_chars)?)
}

impl Unsendable {
    /// The error frame's code and message; a failed lookup is `retry`.
    pub fn code_and_message(&self) -> (&'static str, String) {
        match self {
            Unsendable::Invalid(e) => (e.code, e.message.clone()),
            Unsendable::Store(e) => {
                tracing::warn!(error = %e, "could not look up attachments");
                (crate::protocol::error_code::RETRY, "the attachments could not be checked; resend".to_owned())
            }
        }
    }
}

fn local(dir: &std::path::Path) -> anyhow::Result<LocalFileSystem> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating the attachments directory {}", dir.display()))?;
    LocalFileSystem::new_with_prefix(dir).with_context(|| format!("opening the attachments directory {}", dir.display()))
}

fn key(id: Uuid) -> Path {
    Path::from(id.to_string())
}
