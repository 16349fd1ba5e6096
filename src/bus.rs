//! The message bus between the nodes of a cluster: one NATS connection
//! (core NATS through `async-nats`: publish/subscribe and request/reply),
//! the subjects chathub uses, and a bounded publish queue.
//!
//! NATS carries live traffic only, at most once. Nothing depends on a bus
//! message arriving for correctness: PostgreSQL holds every stored message
//! and every client resumes from it (see docs/cluster.md).
//!
//! - Publishing never waits: frames go into a bounded queue that one task
//!   hands to the client. While NATS is away the queue fills and further
//!   publishes are dropped and counted, instead of holding memory or a
//!   caller (`chathub_bus_messages_total{direction="dropped"}`).
//! - A request fails at once with `BusError::Down` while disconnected, so a
//!   caller never waits out a timeout to learn what the connection knows.
//! - The connection reconnects forever and resubscribes by itself: when a
//!   restarted `nats-server` is back, cross-node traffic resumes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, HeaderMap, RequestErrorKind, Subscriber};
use bytes::Bytes;
use tokio::sync::mpsc;

/// Messages waiting to be handed to the NATS client.
const PUBLISH_QUEUE: usize = 16_384;
/// Messages a subscription buffers before NATS reports a slow consumer.
const SUBSCRIPTION_CAPACITY: usize = 16_384;

/// The subjects, all under `chathub.`.
pub mod subject {
    /// Commands for the conversations a node runs (request/reply).
    pub fn commands(node: &str) -> String {
        format!("chathub.node.{node}.cmd")
    }

    /// Frames for the sockets a node holds, from the nodes that run their
    /// conversations (header `Conn`; `Close` for a close).
    pub fn socket_frames(node: &str) -> String {
        format!("chathub.node.{node}.out")
    }

    /// Answers when the node is alive.
    pub fn ping(node: &str) -> String {
        format!("chathub.node.{node}.ping")
    }

    /// Conversation events for every node's dashboards, and changes every
    /// node applies (status, deletion, settings).
    pub const EVENTS: &str = "chathub.events";
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// Nobody subscribes to the subject: the node is gone.
    #[error("no node answers on that subject")]
    NoResponders,
    /// Subscribed, but no answer in time (the node is paused or overloaded).
    #[error("no answer in time")]
    TimedOut,
    /// This node is not connected to NATS.
    #[error("not connected to NATS")]
    Down,
}

struct Outgoing {
    subject: String,
    headers: Option<HeaderMap>,
    payload: Bytes,
}

/// The node's connection; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    client: Client,
    node_id: Arc<str>,
    connected: Arc<AtomicBool>,
    /// Counts the times live traffic may have been lost (a disconnect, a
    /// slow subscription, a full publish queue): what was sent meanwhile
    /// never arrives.
    gaps: Arc<AtomicU64>,
    outgoing: mpsc::Sender<Outgoing>,
}

impl Bus {
    /// Connects to `url` (comma-separated servers) as `node_id`. Returns at
    /// once even if NATS is not up yet: the client keeps trying.
    pub async fn connect(url: &str, node_id: &str) -> anyhow::Result<Self> {
        let connected = Arc::new(AtomicBool::new(false));
        let gaps = Arc::new(AtomicU64::new(0));
        let (flag, lost) = (connected.clone(), gaps.clone());
        let client = ConnectOptions::new()
            .name(format!("chathub-{node_id}"))
            // A node never needs its own broadcasts back.
            .no_echo()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .subscription_capacity(SUBSCRIPTION_CAPACITY)
            .event_callback(move |event| {
                let (flag, lost) = (flag.clone(), lost.clone());
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            flag.store(true, Ordering::SeqCst);
                            metrics::gauge!("chathub_bus_connected").set(1.0);
                            tracing::info!("connected to NATS");
                        }
                        async_nats::Event::Disconnected => {
                            flag.store(false, Ordering::SeqCst);
                            lost.fetch_add(1, Ordering::SeqCst);
                            metrics::gauge!("chathub_bus_connected").set(0.0);
                            tracing::warn!("disconnected from NATS; reconnecting");
                        }
                        async_nats::Event::SlowConsumer(_) => {
                            lost.fetch_add(1, Ordering::SeqCst);
                            metrics::counter!("chathub_bus_messages_total", "direction" => "dropped").increment(1);
                        }
                        other => tracing::info!(event = %other, "NATS"),
                    }
                }
            })
            .connect(url)
            .await?;
        let (outgoing, mut queue) = mpsc::channel::<Outgoing>(PUBLISH_QUEUE);
        let publisher = client.clone();
        tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                let sent = match message.headers {
                    Some(headers) => publisher.publish_with_headers(message.subject, headers, message.payload).await,
                    None => publisher.publish(message.subject, message.payload).await,
                };
                if sent.is_err() {
                    metrics::counter!("chathub_bus_messages_total", "direction" => "dropped").increment(1);
                }
            }
        });
        Ok(Self { client, node_id: node_id.into(), connected, gaps, outgoing })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// How many times live traffic may have been lost so far (see `gaps`).
    pub fn gaps(&self) -> u64 {
        self.gaps.load(Ordering::SeqCst)
    }

    /// Publishes without waiting (dropped and counted when the queue is full).
    pub fn publish(&self, subject: String, headers: Option<HeaderMap>, payload: Bytes) {
        if self.outgoing.try_send(Outgoing { subject, headers, payload }).is_ok() {
            metrics::counter!("chathub_bus_messages_total", "direction" => "sent").increment(1);
        } else {
            self.gaps.fetch_add(1, Ordering::SeqCst);
            metrics::counter!("chathub_bus_messages_total", "direction" => "dropped").increment(1);
        }
    }

    /// Sends a request and waits up to `timeout` for its answer.
    pub async fn request(&self, subject: String, payload: Bytes, timeout: Duration) -> Result<Bytes, BusError> {
        if !self.is_connected() {
            return Err(BusError::Down);
        }
        metrics::counter!("chathub_bus_messages_total", "direction" => "sent").increment(1);
        let request = async_nats::Request::new().payload(payload).timeout(Some(timeout));
        match self.client.send_request(subject, request).await {
            Ok(answer) => {
                metrics::counter!("chathub_bus_messages_total", "direction" => "received").increment(1);
                Ok(answer.payload)
            }
            Err(e) => Err(match e.kind() {
                RequestErrorKind::NoResponders => BusError::NoResponders,
                RequestErrorKind::TimedOut => BusError::TimedOut,
                _ => BusError::Down,
            }),
        }
    }

    pub async fn subscribe(&self, subject: String) -> anyhow::Result<Subscriber> {
        Ok(self.client.subscribe(subject).await?)
    }
}
