//! A minimal visitor client for the wire contract, able to bind a chosen
//! loopback source address (one address holds ~28k ports).

use std::net::{IpAddr, SocketAddr};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, client_async};

pub type Socket = WebSocketStream<TcpStream>;

/// Connects to `ws://{server}{path}` from `source` (port chosen by the kernel).
pub async fn connect(server: SocketAddr, path: &str, source: Option<IpAddr>) -> anyhow::Result<Socket> {
    let socket = if server.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let (ws, _) = client_async(format!("ws://{server}{path}"), stream).await?;
    Ok(ws)
}

/// Opens a visitor socket to `server` and says hello (`token`: resume that
/// conversation); returns the socket and its welcome frame.
pub async fn hello(server: SocketAddr, source: Option<IpAddr>, token: Option<&str>) -> anyhow::Result<(Socket, Value)> {
    let mut ws = connect(server, "/ws/chat", source).await?;
    ws.send(Message::text(json!({"type": "hello", "token": token, "last_seq": 0}).to_string())).await?;
    while let Some(frame) = ws.next().await {
        if let Message::Text(text) = frame? {
            let welcome: Value = serde_json::from_str(&text)?;
            anyhow::ensure!(welcome["type"] == "welcome", "expected welcome, got {welcome}");
            return Ok((ws, welcome));
        }
    }
    anyhow::bail!("closed before welcome")
}

/// Says hello and waits for the welcome; returns the socket.
pub async fn visitor(server: SocketAddr, source: Option<IpAddr>) -> anyhow::Result<Socket> {
    Ok(hello(server, source, None).await?.0)
}

/// A visitor whose conversation starts on `home` (hello and one message
/// there), resumed from `away`: its messages then travel to the node that
/// runs the conversation.
pub async fn visitor_elsewhere(home: SocketAddr, away: SocketAddr, source: Option<IpAddr>) -> anyhow::Result<Socket> {
    let (first, welcome) = hello(home, source, None).await?;
    let token = welcome["token"].as_str().unwrap_or_default().to_owned();
    let mut first = say_once(first, "home").await?;
    first.close(None).await?;
    Ok(hello(away, source, Some(&token)).await?.0)
}

/// Sends one chat message and waits for its ack (other frames are skipped).
pub async fn say_once(mut ws: Socket, client_msg_id: &str) -> anyhow::Result<Socket> {
    let message = json!({"type": "message", "client_msg_id": client_msg_id, "text": "hello"});
    ws.send(Message::text(message.to_string())).await?;
    while let Some(frame) = ws.next().await {
        if let Message::Text(text) = frame? {
            let value: Value = serde_json::from_str(&text)?;
            match value["type"].as_str() {
                Some("ack") if value["client_msg_id"] == client_msg_id => return Ok(ws),
                Some("error") => anyhow::bail!("message refused: {value}"),
                _ => {}
            }
        }
    }
    anyhow::bail!("closed before the ack")
}

/// Parses `127.0.0.2,127.0.0.3` into source addresses.
pub fn sources(list: &Option<String>) -> Vec<Option<IpAddr>> {
    match list {
        Some(list) => list.split(',').filter_map(|s| s.trim().parse().ok()).map(Some).collect(),
        None => vec![None],
    }
}

/// `127.0.0.1:8081,127.0.0.1:8082`: several nodes of a cluster, loopback only.
pub fn loopbacks(servers: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let list: Vec<SocketAddr> = servers.split(',').map(|s| loopback(s.trim())).collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!list.is_empty(), "no server given");
    Ok(list)
}

/// Signs in as `admin`; returns the session cookie.
pub async fn admin_cookie(server: std::net::SocketAddr, password: &str) -> anyhow::Result<String> {
    let login = reqwest::Client::new()
        .post(format!("http://{server}/api/auth/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await?;
    anyhow::ensure!(login.status().is_success(), "admin login failed: {}", login.status());
    Ok(login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("no session cookie"))?
        .to_owned())
}

/// Only loopback targets: this tool must never load anything else.
pub fn loopback(server: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = server.parse()?;
    anyhow::ensure!(addr.ip().is_loopback(), "the load generator only targets loopback addresses");
    Ok(addr)
}
