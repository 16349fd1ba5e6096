//! `/api/attachments` (SPEC §12): uploading a file into a conversation and
//! reading it back. A visitor uploads with their conversation's token,
//! staff with their login; the bytes decide the type (sniffed against
//! `ATTACHMENT_TYPES`), never the name or the request's headers. Reading
//! needs the conversation's token or staff: anyone else gets 404, the same
//! as for an id that does not exist, so ids cannot be probed.

use actix_multipart::Multipart;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType, ExtendedValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde_json::json;
use uuid::Uuid;

use super::ApiError;
use crate::attachments::{NotStored, Upload};
use crate::auth::access::Principal;
use crate::state::AppState;
use crate::store;

/// How long one upload may take to arrive (a slow one holds an upload slot).
const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Bytes of multipart framing and other fields allowed besides the file.
const MULTIPART_OVERHEAD: usize = 16 * 1024;

/// Served with every attachment: never run, never framed, never sniffed.
const ATTACHMENT_CSP: &str = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox";

/// `POST /api/attachments`: one `file` field, stored if its bytes are an
/// accepted type within `MAX_UPLOAD_BYTES`; answers 201 with the attachment.
pub async fn upload(req: HttpRequest, principal: Option<Principal>, mut form: Multipart, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let principal = principal.ok_or(ApiError::Unauthenticated)?;
    let (session_id, uploaded_by) = match &principal {
        Principal::Visitor { session_id } => (Some(*session_id), None),
        Principal::Staff(user) => (None, Some(user.user_id)),
        // Refused by the route's access rule already.
        Principal::Machine { .. } => return Err(ApiError::Forbidden("API keys may not upload attachments")),
    };
    let max = state.attachments.max_bytes;
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max + MULTIPART_OVERHEAD) {
        return Err(ApiError::PayloadTooLarge(max));
    }
    // Each upload holds its file in memory until stored: at most
    // `MAX_UPLOADS_IN_FLIGHT` at once, the rest are told to retry.
    let _slot = state.uploads_in_flight.clone().try_acquire_owned().map_err(|_| ApiError::Busy { retry_after_secs: 1 })?;
    let ip = state.config.trusted_proxies.of_request(&req).ok_or(ApiError::invalid("no_peer", "unknown peer address"))?;
    let allowed = state.uploads_per_ip.allow(ip) && session_id.is_none_or(|s| state.uploads_per_conversation.allow(s));
    if !allowed {
        return Err(ApiError::RateLimited { retry_after_secs: 60 });
    }

    let (name, bytes) = tokio::time::timeout(UPLOAD_TIMEOUT, read_file_field(&mut form, max))
        .await
        .map_err(|_| ApiError::Timeout(format!("the upload took longer than {} s", UPLOAD_TIMEOUT.as_secs())))??;
    let upload = Upload { name, bytes: bytes.freeze(), session_id, uploaded_by };
    let attachment = state.attachments.store_new(&state.db, upload).await.map_err(|e| match e {
        NotStored::Empty => ApiError::invalid("empty_file", "the file is empty"),
        NotStored::UnsupportedType(_) => ApiError::UnsupportedFileType(e.to_string()),
        NotStored::Unavailable(e) => ApiError::Unavailable(e),
        NotStored::Store(e) => e.into(),
    })?;
    Ok(HttpResponse::Created().json(json!({ "attachment": attachment })))
}

/// The name and bytes of the form's `file` field; other fields before it
/// are skipped (counted against the same limit, so a body without a
/// `Content-Length` cannot stream forever). Past `max` bytes it stops
/// reading: 413, nothing stored.
async fn read_file_field(form: &mut Multipart, max: usize) -> Result<(String, BytesMut), ApiError> {
    let invalid = |e: actix_multipart::MultipartError| ApiError::invalid("invalid_upload", format!("not a valid multipart/form-data body: {e}"));
    let mut skipped = 0;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(invalid)?;
        if field.name() != Some("file") {
            while let Some(chunk) = field.next().await {
                skipped += chunk.map_err(invalid)?.len();
                if skipped > MULTIPART_OVERHEAD {
                    return Err(ApiError::PayloadTooLarge(max));
                }
            }
            continue;
        }
        let name = field.content_disposition().and_then(|d| d.get_filename()).unwrap_or("file").to_owned();
        let mut bytes = BytesMut::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(invalid)?;
            if bytes.len() + chunk.len() > max {
                return Err(ApiError::PayloadTooLarge(max));
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok((name, bytes));
    }
    Err(ApiError::invalid("missing_file", "the form has no `file` field"))
}

/// `GET /api/attachments/{id}`: the file, to the conversation's visitor or
/// to staff (and API keys). Images are shown inline; everything else is a
/// download.
pub async fn download(id: web::Path<Uuid>, principal: Option<Principal>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let not_found = ApiError::NotFound("attachment");
    let Some(principal) = principal else { return Err(not_found) };
    let Some(row) = store::attachments::find(&state.db, *id).await? else { return Err(not_found) };
    if let Principal::Visitor { session_id } = principal {
        if row.session_id != Some(session_id) {
            return Err(not_found);
        }
    }
    let Some(bytes) = state.attachments.stream(row.attachment.id).await.map_err(ApiError::Unavailable)? else { return Err(not_found) };
    // A store failure midway cuts the body off (the client sees a failed download).
    let bytes = bytes.map(|chunk| chunk.map_err(|e| ApiError::Unavailable(e.into())));
    let file = row.attachment;
    let content_type = if file.content_type == "text/plain" { "text/plain; charset=utf-8".to_owned() } else { file.content_type.clone() };
    let disposition = ContentDisposition {
        disposition: if file.is_image() { DispositionType::Inline } else { DispositionType::Attachment },
        parameters: vec![
            DispositionParam::Filename(file.name.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').collect()),
            DispositionParam::FilenameExt(ExtendedValue { charset: header::Charset::Ext("UTF-8".into()), language_tag: None, value: file.name.clone().into_bytes() }),
        ],
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header(disposition)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, ATTACHMENT_CSP))
        .insert_header(("Cross-Origin-Resource-Policy", "same-origin"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=86400"))
        .no_chunking(file.size.max(0) as u64)
        .streaming(bytes))
}
