//! A visitor speaking the wire contract over a real WebSocket.

#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// How long a test waits for one frame before failing.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Visitor {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub session_id: Option<String>,
    pub token: Option<String>,
}

/// What the socket did next.
#[derive(Debug)]
pub enum Event {
    Frame(Value),
    Closed(Option<u16>),
}

impl Visitor {
    pub async fn connect(port: u16) -> Self {
        Self::connect_path(port, "/ws/chat").await
    }

    /// Opens a staff dashboard socket with a session cookie and an Origin.
    pub async fn dashboard(port: u16, cookie: &str, origin: &str) -> Self {
        Self::connect_request(Self::dashboard_request(port, cookie, origin)).await
    }

    pub fn dashboard_request(port: u16, cookie: &str, origin: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://127.0.0.1:{port}/ws/dashboard").into_client_request().unwrap();
        request.headers_mut().insert("cookie", cookie.parse().unwrap());
        request.headers_mut().insert("origin", origin.parse().unwrap());
        request
    }

    pub async fn connect_request(request: tokio_tungstenite::tungstenite::handshake::client::Request) -> Self {
        let (ws, _) = connect_async(request).await.expect("websocket handshake");
        Self { ws, session_id: None, token: None }
    }

    pub async fn connect_path(port: u16, path: &str) -> Self {
        let (ws, _) = connect_async(format!("ws://127.0.0.1:{port}{path}")).await.expect("websocket handshake");
        Self { ws, session_id: None, token: None }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::text(frame.to_string())).await.unwrap();
    }

    /// Sends unless the connection is gone; returns whether it went out.
    pub async fn try_send(&mut self, frame: Value) -> bool {
        self.ws.send(Message::text(frame.to_string())).await.is_ok()
    }

    /// Sends a raw WebSocket message; `false` once the socket is gone.
    pub async fn try_send_raw(&mut self, message: Message) -> bool {
        self.ws.send(message).await.is_ok()
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    /// The next frame or close (pings are answered by tungstenite).
    pub async fn next_event(&mut self) -> Event {
        loop {
            let next = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next()).await.expect("a frame in time");
            match next {
                Some(Ok(Message::Text(text))) => return Event::Frame(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(frame))) => return Event::Closed(frame.map(|f: CloseFrame| f.code.into())),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Event::Closed(None),
            }
        }
    }

    pub async fn recv(&mut self) -> Value {
        match self.next_event().await {
            Event::Frame(frame) => frame,
            Event::Closed(code) => panic!("socket closed ({code:?}) while a frame was expected"),
        }
    }

    /// Reads frames until one of type `kind` arrives; returns it and those before it.
    pub async fn recv_until(&mut self, kind: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let frame = self.recv().await;
            if frame["type"] == kind {
                return (frame, before);
            }
            before.push(frame);
        }
    }

    /// Waits for the close and returns its code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Event::Closed(code) = self.next_event().await {
                return code;
            }
        }
    }

    pub async fn hello(&mut self) -> Value {
        self.hello_with(json!({"type": "hello", "token": null, "last_seq": 0})).await
    }

    pub async fn resume(&mut self, token: &str, last_seq: i64) -> Value {
        self.hello_with(json!({"type": "hello", "token": token, "last_seq": last_seq})).await
    }

    pub async fn hello_with(&mut self, hello: Value) -> Value {
        self.send(hello).await;
        let welcome = self.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        self.session_id = welcome["session_id"].as_str().map(str::to_owned);
        self.token = welcome["token"].as_str().map(str::to_owned);
        welcome
    }

    /// Sends a message and returns its acked seq (other frames are skipped).
    pub async fn say(&mut self, client_msg_id: &str, text: &str) -> i64 {
        self.send(json!({"type": "message", "client_msg_id": client_msg_id, "text": text})).await;
        loop {
            let frame = self.recv().await;
            if frame["type"] == "ack" && frame["client_msg_id"] == client_msg_id {
                return frame["seq"].as_i64().unwrap();
            }
            assert_ne!(frame["type"], "error", "unexpected error: {frame}");
        }
    }

    /// The next `message` frame's message object.
    pub async fn next_message(&mut self) -> Value {
        self.recv_until("message").await.0["message"].clone()
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
