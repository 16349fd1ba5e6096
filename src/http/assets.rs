//! The dashboard (`static/`), the widget (`widget/`) and the demo page,
//! embedded in the binary (release builds; debug builds read the folders,
//! so front-end edits need no rebuild). Every file is served with its
//! content type, an ETag (304 when unchanged) and cache headers; every page
//! with a Content-Security-Policy that allows no inline script and no
//! third-party origin.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::RustEmbed;

use super::ApiError;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Dashboard;

#[derive(RustEmbed)]
#[folder = "widget/"]
struct Widget;

/// The dashboard may not be framed; it talks only to this origin (and frames
/// only its own widget, for "Test AI").
const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     font-src 'self'; connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// The widget's chat frame is embedded by customer sites, anywhere (which
/// sites may chat is decided by the site's origin list at the socket). Its
/// images are `blob:` URLs: attachments are fetched with the conversation
/// token, which an `<img src>` cannot send.
const WIDGET_FRAME_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors *";
/// The demo landing page embeds the widget exactly as a customer site would.
const DEMO_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     frame-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn serve(req: &HttpRequest, file: Option<rust_embed::EmbeddedFile>, path: &str, csp: Option<&'static str>) -> Result<HttpResponse, ApiError> {
    let file = file.ok_or(ApiError::NotFound("file"))?;
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let cache = if path.starts_with("vendor/") { "public, max-age=86400" } else { "no-cache" };
    let unchanged = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str());
    let mut response = if unchanged { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::CONTENT_TYPE, file.metadata.mimetype()))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"));
    if let Some(csp) = csp {
        response.insert_header((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp)));
    }
    if unchanged {
        return Ok(response.finish());
    }
    Ok(response.body(file.data.into_owned()))
}

/// `GET /`: the dashboard.
pub async fn index(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve(&req, Dashboard::get("index.html"), "index.html", Some(DASHBOARD_CSP))
}

/// `GET /static/{path}`: the dashboard's scripts, styles and vendored libraries.
pub async fn dashboard_file(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let csp = path.ends_with(".html").then_some(DASHBOARD_CSP);
    serve(&req, Dashboard::get(&path), &path, csp)
}

/// `GET /widget.js`: the loader customer sites include.
pub async fn widget_loader(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve(&req, Widget::get("widget.js"), "widget.js", None)
}

/// `GET /widget/{path}`: the chat frame and its files.
pub async fn widget_file(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let csp = path.ends_with(".html").then_some(WIDGET_FRAME_CSP);
    serve(&req, Widget::get(&path), &path, csp)
}

/// `GET /demo`: a landing page that embeds the widget like a customer site.
pub async fn demo(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve(&req, Dashboard::get("demo.html"), "demo.html", Some(DEMO_CSP))
}
