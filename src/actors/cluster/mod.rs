//! Several nodes on one PostgreSQL and NATS (`NATS_URL` set; docs/cluster.md).
//!
//! By job: this file holds the node's view of the cluster (its bus, its
//! leases, which peers answer); `wire` what nodes say to each other;
//! `remote` the side of `SessionHandle` that reaches a conversation another
//! node runs; `serve` what this node answers on the bus, and its timers.
//!
//! - **Ownership.** One node runs a conversation's actor at a time: the one
//!   holding its lease row (`store::leases`). A node claims the lease before
//!   it loads the conversation, so what it loads is final; it renews the
//!   leases of its running actors in one statement every `LEASE_RENEW_SECS`;
//!   and every write of the conversation checks the lease's fencing number
//!   in its own transaction, so a node that lost the lease (paused,
//!   partitioned) can never write into the conversation again.
//! - **Takeover.** A lease held by a node that does not answer its ping
//!   (gone from NATS, or paused) is taken over at once, not waited out. A
//!   node that is itself cut off from NATS cannot tell, so it only takes
//!   expired leases: two halves of a partition never trade a conversation.
//! - **Routing.** A socket, webhook or staff command that reaches another
//!   node is forwarded to the owner (`remote`). Sockets stay where they are:
//!   the owner keeps a proxy `Outbound` for each remote socket, whose frames
//!   go to the socket's node, which writes them to the socket.
//! - **Events.** Conversation events are published to every node's
//!   supervisor; staff changes and settings changes likewise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::bus::{Bus, BusError, subject};
use crate::domain::SessionId;
use crate::outbound::{ConnId, Outbound};
use crate::postgres::Db;
use crate::store::leases::{self, Claim};

pub mod remote;
pub mod serve;
pub mod wire;

pub use remote::RemoteSession;
pub use wire::SettingsChange;

/// How long a ping waits for its node.
const PING_TIMEOUT: Duration = Duration::from_millis(1000);
/// A node that answered a ping this recently is taken as alive.
const ALIVE_FOR: Duration = Duration::from_secs(1);

/// Where a conversation runs, as far as this node can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Here, under this fencing number (the lease was just claimed).
    Here(i64),
    /// On another node that answers.
    There(String),
}

/// A socket on this node attached to a conversation another node runs.
struct RemoteSocket {
    owner: String,
    outbound: Outbound,
}

/// This node's membership in the cluster.
pub struct Cluster {
    bus: Bus,
    db: Db,
    lease_ttl: Duration,
    lease_renew: Duration,
    /// Frames a proxy socket may queue (the visitor socket's own bound).
    send_queue: usize,
    /// This node's sockets attached to conversations other nodes run.
    remote_sockets: DashMap<ConnId, RemoteSocket>,
    /// Owner side: a proxy for each socket of another node attached to a
    /// conversation running here, by (node, that node's conn id).
    proxies: DashMap<(String, ConnId), (SessionId, Outbound)>,
    /// Peers that answered a ping recently.
    alive: DashMap<String, Instant>,
}

impl Cluster {
    pub fn new(bus: Bus, db: Db, config: &crate::config::Config) -> Arc<Self> {
        Arc::new(Self {
            bus,
            db,
            lease_ttl: Duration::from_secs(config.lease_ttl_secs),
            lease_renew: Duration::from_secs(config.lease_renew_secs.max(1)),
            send_queue: config.limits.send_queue,
            remote_sockets: DashMap::new(),
            proxies: DashMap::new(),
            alive: DashMap::new(),
        })
    }

    pub fn node_id(&self) -> &str {
        self.bus.node_id()
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Where `id` runs: claims its lease if it is free, expired, or held by
    /// a node that does not answer. `Err` when it is held by a node this one
    /// cannot reach because this node is off NATS (try again later).
    pub async fn locate(&self, id: SessionId) -> anyhow::Result<Owner> {
        for _ in 0..3 {
            match leases::claim(&self.db, id.0, self.node_id(), self.lease_ttl).await? {
                Claim::Owned(fence) => {
                    metrics::counter!("chathub_lease_claims_total").increment(1);
                    return Ok(Owner::Here(fence));
                }
                Claim::Held { node_id, fence } => match self.answers(&node_id).await {
                    Ok(true) => return Ok(Owner::There(node_id)),
                    Ok(false) => {
                        if let Some(fence) = leases::take_over(&self.db, id.0, self.node_id(), &node_id, fence, self.lease_ttl).await? {
                            tracing::info!(session = %id, from = %node_id, "took over a conversation from a node that is gone");
                            metrics::counter!("chathub_lease_takeovers_total").increment(1);
                            return Ok(Owner::Here(fence));
                        }
                        // Someone else changed the lease first: look again.
                    }
                    Err(BusError::Down) => anyhow::bail!("the conversation runs on {node_id}, and this node is not connected to NATS"),
                    Err(e) => anyhow::bail!("the node running the conversation could not be asked: {e}"),
                },
            }
        }
        anyhow::bail!("the conversation's lease keeps changing hands; try again")
    }

    /// The node running `id` if it is another one that answers (no claim).
    pub async fn running_elsewhere(&self, id: SessionId) -> Option<String> {
        let node = leases::holder(&self.db, id.0).await.ok().flatten()?;
        (node != self.node_id() && matches!(self.answers(&node).await, Ok(true))).then_some(node)
    }

    /// The lease for a conversation this node must run (a command sent to
    /// it, an unsaved conversation it opened): `None` if another node holds it.
    pub async fn claim_here(&self, id: SessionId) -> anyhow::Result<Option<i64>> {
        match leases::claim(&self.db, id.0, self.node_id(), self.lease_ttl).await? {
            Claim::Owned(fence) => {
                metrics::counter!("chathub_lease_claims_total").increment(1);
                Ok(Some(fence))
            }
            Claim::Held { .. } => Ok(None),
        }
    }

    /// Whether `node` answers on NATS. `Err(Down)`: this node cannot tell.
    pub async fn answers(&self, node: &str) -> Result<bool, BusError> {
        if node == self.node_id() {
            return Ok(true);
        }
        if self.alive.get(node).is_some_and(|at| at.elapsed() < ALIVE_FOR) {
            return Ok(true);
        }
        match self.bus.request(subject::ping(node), bytes::Bytes::new(), PING_TIMEOUT).await {
            Ok(_) => {
                self.alive.insert(node.to_owned(), Instant::now());
                Ok(true)
            }
            Err(BusError::Down) => Err(BusError::Down),
            Err(_) => {
                self.alive.remove(node);
                Ok(false)
            }
        }
    }

    /// Gives a stopped actor's lease back (best effort: it lapses anyway).
    pub fn release(&self, id: SessionId, fence: i64) {
        let (db, node) = (self.db.clone(), self.node_id().to_owned());
        tokio::spawn(async move {
            if let Err(e) = leases::release(&db, id.0, &node, fence).await {
                tracing::debug!(error = %e, session = %id, "could not release a lease; it lapses");
            }
        });
    }

    /// Gives every lease back at shutdown, so other nodes take over at once.
    pub async fn release_all(&self) {
        match leases::release_all(&self.db, self.node_id()).await {
            Ok(n) => tracing::info!(leases = n, "released this node's conversations"),
            Err(e) => tracing::warn!(error = %e, "could not release this node's leases; they lapse"),
        }
    }

    /// Publishes an event for every other node.
    pub fn publish(&self, event: &wire::Event) {
        match serde_json::to_vec(event) {
            Ok(payload) => self.bus.publish(subject::EVENTS.to_owned(), None, payload.into()),
            Err(e) => tracing::error!(error = %e, "could not encode a bus event"),
        }
    }
}
