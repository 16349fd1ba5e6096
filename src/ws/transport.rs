//! What the visitor and dashboard sockets share below their protocols: the
//! upgrade with its limits, how an incoming WebSocket message is classified (pings answered, closes and
//! bad framing turned into close codes) and the keep-alive check.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, ProtocolError, Session};
use bytestring::ByteString;

use super::protocol::close;
use crate::config::Limits;
use crate::http::ApiError;

/// Completes the WebSocket handshake with the frame-size limits applied.
pub fn upgrade(req: &HttpRequest, body: web::Payload, limits: &Limits) -> Result<(HttpResponse, Session, AggregatedMessageStream), ApiError> {
    let (response, session, stream) =
        actix_ws::handle(req, body).map_err(|e| ApiError::invalid("not_a_websocket", e.to_string()))?;
    let stream = stream
        .max_frame_size(limits.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(limits.max_frame_bytes);
    Ok((response, session, stream))
}

/// An incoming WebSocket message, as the protocol layer sees it.
pub enum Incoming {
    Text(ByteString),
    Binary,
    /// Control traffic, already answered.
    Handled,
    /// Close the socket with this code.
    Close(u16, &'static str),
    /// The peer is gone.
    Gone,
}

pub async fn classify(session: &mut Session, incoming: Option<Result<AggregatedMessage, ProtocolError>>) -> Incoming {
    match incoming {
        None => Incoming::Gone,
        Some(Ok(AggregatedMessage::Text(text))) => Incoming::Text(text),
        Some(Ok(AggregatedMessage::Binary(_))) => Incoming::Binary,
        Some(Ok(AggregatedMessage::Ping(bytes))) => {
            let _ = session.pong(&bytes).await;
            Incoming::Handled
        }
        Some(Ok(AggregatedMessage::Pong(_))) => Incoming::Handled,
        Some(Ok(AggregatedMessage::Close(_))) => Incoming::Close(1000, "bye"),
        Some(Err(ProtocolError::Overflow)) => Incoming::Close(close::MESSAGE_TOO_BIG, "frame larger than the limit"),
        Some(Err(_)) => Incoming::Close(close::PROTOCOL_ERROR, "malformed WebSocket frame"),
    }
}

/// On each ping tick: close a peer silent for longer than `idle_timeout`,
/// else ping it. `Err` carries the close to perform (`None`: peer gone).
pub async fn keep_alive(session: &mut Session, last_heard: Instant, idle_timeout: Duration) -> Result<(), Option<(u16, &'static str)>> {
    if last_heard.elapsed() > idle_timeout {
        return Err(Some((close::IDLE_TIMEOUT, "no response to pings")));
    }
    session.ping(b"").await.map_err(|_| None)
}
