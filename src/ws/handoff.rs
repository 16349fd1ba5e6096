//! Taking a WebSocket connection out of actix-http's HTTP/1 dispatcher.
//!
//! Why: actix-web's dispatcher keeps an 8 KiB read and an 8 KiB write buffer
//! for as long as a connection lives (`HW_BUFFER_SIZE`, not configurable),
//! and actix-ws adds channels on top; an idle visitor socket cost 13 KiB of
//! server memory before chathub held anything for it. Sockets are most of
//! what the hub holds, so they get a lean path.
//!
//! How: the HTTP service is built with an *upgrade* service, which actix-http
//! calls for every `Connection: upgrade` request with the raw connection.
//! The request still goes through the same `App` as any other (route table,
//! access rules, extractors, handler), so nothing about who may open which
//! socket lives here. A socket handler that accepts answers with [`accept`]:
//! a `101` response carrying a [`Handoff`]. This module writes that response,
//! drops the dispatcher's buffers, and gives the bare TCP stream, wrapped in
//! tokio-tungstenite with small buffers, to the handoff's task. Any other
//! answer (a JSON error, a 404) is written as a normal response, and the
//! connection closes.

use std::fmt::Debug;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use actix_codec::{Framed, FramedParts};
use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::h1::{Codec, Message};
use actix_http::{ConnectionType, Request, Response, StatusCode};
use actix_web::dev::{AppConfig, Service, ServiceFactory, ServiceResponse, fn_factory, fn_service};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::SinkExt;
use futures_util::future::LocalBoxFuture;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::OpenSockets;
use crate::error::ApiError;

/// An accepted WebSocket on its own TCP stream.
pub type WebSocket = WebSocketStream<TcpStream>;

type Task = Box<dyn FnOnce(WebSocket) -> LocalBoxFuture<'static, ()>>;

/// What a socket handler leaves in its `101` response: how to frame the
/// socket and the task that serves it.
pub struct Handoff {
    config: WebSocketConfig,
    task: Task,
}

/// Accepts a WebSocket handshake: checks the request is one (else 400
/// `not_a_websocket`) and answers `101` with `task` to run on the socket.
pub fn accept<F, Fut>(req: &HttpRequest, config: WebSocketConfig, task: F) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(WebSocket) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let mut response = actix_http::ws::handshake(req.head())
        .map_err(|e| ApiError::invalid("not_a_websocket", e.to_string()))?;
    let mut response = HttpResponse::from(response.finish()).map_into_boxed_body();
    let task: Task = Box::new(move |socket| Box::pin(task(socket)));
    response.extensions_mut().insert(Handoff { config, task });
    Ok(response)
}

/// The upgrade service for `HttpService::build().upgrade(..)`: routes the
/// upgrade request through `app` (its own instance of the same `App`).
pub fn upgrade_service<A, B>(
    app: A,
    sockets: Arc<OpenSockets>,
) -> impl ServiceFactory<(Request, Framed<TcpStream, Codec>), Config = (), Response = (), Error = actix_web::Error, InitError = ()>
where
    A: ServiceFactory<Request, Config = AppConfig, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    A::InitError: Debug,
    A::Service: 'static,
    B: MessageBody + 'static,
{
    let app = Rc::new(app);
    fn_factory(move || {
        let (app, sockets) = (app.clone(), sockets.clone());
        async move {
            let service = app
                .new_service(AppConfig::default())
                .await
                .map_err(|e| tracing::error!(error = ?e, "could not start the upgrade service"))?;
            let service = Rc::new(service);
            Ok(fn_service(move |(req, framed): (Request, Framed<TcpStream, Codec>)| {
                let (service, sockets) = (service.clone(), sockets.clone());
                async move {
                    let response = match service.call(req).await {
                        Ok(response) => response.into_parts().1.map_into_boxed_body(),
                        Err(e) => HttpResponse::from_error(e),
                    };
                    serve(response, framed, &sockets).await;
                    Ok(())
                }
            }))
        }
    })
}

/// Writes the app's answer; on a `101` with a handoff, starts the socket's
/// task. The task runs on its own, so the HTTP connection (the dispatcher
/// and its future, about 3 KiB) ends here.
async fn serve(mut response: HttpResponse, mut framed: Framed<TcpStream, Codec>, sockets: &Arc<OpenSockets>) {
    let handoff = response.extensions_mut().remove::<Handoff>();
    let mut response: Response<BoxBody> = response.into();
    if let Some(Handoff { config, task }) = handoff.filter(|_| response.status() == StatusCode::SWITCHING_PROTOCOLS) {
        if framed.send(Message::Item((response.drop_body(), BodySize::None))).await.is_err() {
            return;
        }
        // Bytes the client sent right after the handshake (a frame, if it
        // did not wait for the 101) go to the WebSocket reader; the
        // dispatcher's buffers are dropped here.
        let FramedParts { io, read_buf, write_buf, .. } = framed.into_parts();
        drop(write_buf);
        // Writes are batched per wake-up by the socket task; Nagle's
        // algorithm would hold a second small frame (an ack behind a status)
        // until the client's delayed ACK, up to 40 ms.
        let _ = io.set_nodelay(true);
        let early = read_buf.to_vec();
        drop(read_buf);
        let socket = if early.is_empty() {
            WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
        } else {
            WebSocketStream::from_partially_read(io, early, Role::Server, Some(config)).await
        };
        let open = sockets.track();
        let run = task(socket);
        actix_web::rt::spawn(async move {
            run.await;
            drop(open);
        });
        return;
    }
    response.head_mut().set_connection_type(ConnectionType::Close);
    let (head, body) = response.into_parts();
    let body = actix_web::body::to_bytes(body).await.unwrap_or_default();
    if framed.send(Message::Item((head, BodySize::Sized(body.len() as u64)))).await.is_ok() {
        if !body.is_empty() {
            let _ = framed.send(Message::Chunk(Some(body))).await;
        }
        let _ = framed.send(Message::Chunk(None)).await;
    }
    let _ = framed.close().await;
}
