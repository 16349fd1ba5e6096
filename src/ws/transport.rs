//! What the visitor and dashboard sockets share below their protocols: the
//! framing limits and buffer sizes, how an incoming WebSocket message is
//! classified (bad framing turned into close codes), batched writes with a
//! deadline, the keep-alive check, and the close.
//!
//! Writes are queued into the socket's write buffer (`send`) and go out on
//! `flush`, so a burst of frames costs one `write(2)`. A peer that takes no
//! bytes for `WS_IDLE_TIMEOUT_SECS` is dropped without a close frame (there
//! is no way to deliver one); a peer merely slower than the hub is closed
//! with 4008 by the outbound queue.

use std::time::{Duration, Instant};

use bytestring::ByteString;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::handoff::WebSocket;
use crate::protocol::close;
use crate::config::Limits;

/// Initial read buffer per socket, kept for the socket's life. A `hello`
/// fits (most widget sockets never send more); a larger frame grows the
/// buffer once, and its space is reused. 512 cost 0.37 KB more per idle
/// socket (15k sockets, one core), for no measured gain in chat.
const READ_BUFFER: usize = 128;
/// How long a closing socket waits for the peer's close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(3);
/// Queued frames are written once this many bytes wait (or on flush).
const WRITE_BATCH: usize = 16 * 1024;

/// The framing configuration of every hub socket.
pub fn config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BATCH)
        .max_message_size(Some(limits.max_frame_bytes))
        .max_frame_size(Some(limits.max_frame_bytes))
}

/// An incoming WebSocket message, as the protocol layer sees it.
pub enum Incoming {
    Text(Utf8Bytes),
    Binary,
    /// Control traffic (a ping's pong is queued by the framing layer).
    Handled,
    /// Close the socket with this code.
    Close(u16, &'static str),
    /// The peer is gone.
    Gone,
}

/// The peer cannot be written to any more.
#[derive(Debug)]
pub struct Gone;

/// One accepted socket.
pub struct Socket {
    ws: WebSocket,
    /// How long a write may wait for the peer to take bytes.
    write_timeout: Duration,
}

impl Socket {
    pub fn new(ws: WebSocket, limits: &Limits) -> Self {
        Self { ws, write_timeout: Duration::from_secs(limits.client_timeout_secs.max(1)) }
    }

    /// The next message from the peer. Cancel-safe: a partly read frame
    /// stays buffered.
    pub async fn recv(&mut self) -> Incoming {
        match self.ws.next().await {
            None => Incoming::Gone,
            Some(Ok(Message::Text(text))) => Incoming::Text(text),
            Some(Ok(Message::Binary(_))) => Incoming::Binary,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Incoming::Handled,
            Some(Ok(Message::Close(_))) => Incoming::Close(1000, "bye"),
            Some(Err(WsError::Capacity(_))) => Incoming::Close(close::MESSAGE_TOO_BIG, "frame larger than the limit"),
            Some(Err(WsError::Protocol(_) | WsError::Utf8(_))) => {
                Incoming::Close(close::PROTOCOL_ERROR, "malformed WebSocket frame")
            }
            Some(Err(_)) => Incoming::Gone,
        }
    }

    /// Queues a text frame; it is written when the batch fills or on `flush`.
    pub async fn send(&mut self, frame: ByteString) -> Result<(), Gone> {
        let text = Utf8Bytes::try_from(frame.into_bytes()).expect("a ByteString is UTF-8");
        self.with_deadline(|ws| ws.feed(Message::Text(text))).await
    }

    pub async fn flush(&mut self) -> Result<(), Gone> {
        self.with_deadline(|ws| ws.flush()).await
    }

    /// On each ping tick: close a peer silent for longer than `idle_timeout`,
    /// else ping it. `Err` carries the close to perform (`None`: peer gone).
    pub async fn keep_alive(&mut self, last_heard: Instant, idle_timeout: Duration) -> Result<(), Option<(u16, &'static str)>> {
        if last_heard.elapsed() > idle_timeout {
            return Err(Some((close::IDLE_TIMEOUT, "no response to pings")));
        }
        self.with_deadline(|ws| ws.send(Message::Ping(Default::default()))).await.map_err(|_| None)
    }

    /// Closes with `code` (or just drops a peer that is already gone).
    ///
    /// After the close frame, what the peer still sends is read and dropped
    /// until its own close frame (or `CLOSE_LINGER`): closing a TCP socket
    /// with unread bytes makes the kernel send a reset, which throws away
    /// what the peer had not read yet, our close frame included.
    pub async fn close(mut self, close: Option<(u16, &'static str)>) {
        let Some((code, reason)) = close else { return };
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
        if self.with_deadline(|ws| ws.close(Some(frame))).await.is_ok() {
            let _ = tokio::time::timeout(CLOSE_LINGER, async {
                while let Some(Ok(_)) = self.ws.next().await {}
            })
            .await;
        }
    }

    async fn with_deadline<'a, F, Fut>(&'a mut self, op: F) -> Result<(), Gone>
    where
        F: FnOnce(&'a mut WebSocket) -> Fut,
        Fut: Future<Output = Result<(), WsError>> + 'a,
    {
        let deadline = self.write_timeout;
        match tokio::time::timeout(deadline, op(&mut self.ws)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        }
    }
}

/// Writes `next` and everything already queued behind it, without going back
/// to the socket loop between frames, then flushes once (fewer wake-ups and
/// one `write(2)` for a burst). `skip` drops a frame by its dedupe key.
/// `Err` carries the close the loop must perform (`None`: the peer is gone).
pub async fn drain(
    socket: &mut Socket,
    receiver: &mut crate::outbound::OutboundReceiver,
    next: crate::outbound::Next,
    skip: impl Fn(Option<crate::outbound::DedupeKey>) -> bool,
) -> Result<(), Option<(u16, &'static str)>> {
    let mut next = Some(next);
    loop {
        match next.take() {
            Some(crate::outbound::Next::Frame(frame, key)) => {
                if !skip(key) && socket.send(frame).await.is_err() {
                    return Err(None);
                }
                next = receiver.try_next();
            }
            Some(crate::outbound::Next::Close(code, reason)) => return Err(Some((code, reason))),
            None => return socket.flush().await.map_err(|_| None),
        }
    }
}
