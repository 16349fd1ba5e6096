//! What a node serves to the others, and its cluster timers:
//!
//! - `commands`: requests for the conversations this node runs (or should
//!   run: a lease it may claim), answered through the local actors. An
//!   attach creates a proxy `Outbound` whose frames `forward` sends to the
//!   socket's node.
//! - `socket_frames`: frames from owners for this node's remote sockets.
//! - `events`: other nodes' conversation events for the local supervisor,
//!   staff changes for local actors, settings changes for the caches.
//! - `pings`: answers, so peers know this node is alive.
//! - `renew_leases`: renews the leases of the running actors in one
//!   statement; an actor whose lease was taken is stopped (`lease_lost`).
//! - `watch_peers`: a socket attached to a node that stopped answering is
//!   closed (1012) so its client resumes elsewhere; proxies of a gone
//!   node's sockets are dropped; once NATS is back after losing traffic,
//!   dashboards here are closed (4008) to reload what they missed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use bytestring::ByteString;
use futures_util::StreamExt;

use super::super::chat_session::AttachError;
use super::super::hub::Hub;
use super::wire::{Command, Event, Reply, SettingsChange};
use super::Cluster;
use crate::bus::subject;
use crate::domain::{ClientMsgId, MessageBody, SeenUpTo, SessionId};
use crate::outbound::{self, ConnId, Next, OutboundReceiver};
use crate::protocol::close;
use crate::store::leases;

/// How often a node re-reads the completion rules.
const SETTINGS_POLL: Duration = Duration::from_secs(5);
/// How often the sockets' and proxies' peers are checked.
const WATCH_PEERS_EVERY: Duration = Duration::from_secs(1);
/// Headers of a socket frame.
const CONN: &str = "Conn";
const CLOSE: &str = "Close";
const OWNER: &str = "Owner";
const SESSION: &str = "Session";

/// What this node does when another node changed a setting.
pub type OnSettings = Arc<dyn Fn(SettingsChange) + Send + Sync>;

/// The node's loops, on a thread of their own (conversation actors started
/// for other nodes' commands run there too).
pub struct Serving {
    arbiter: actix::Arbiter,
}

impl Serving {
    pub fn start(hub: Arc<Hub>, cluster: Arc<Cluster>, on_settings: OnSettings) -> Self {
        let arbiter = actix::Arbiter::new();
        arbiter.spawn(async move {
            actix::spawn(commands(hub.clone(), cluster.clone()));
            actix::spawn(socket_frames(cluster.clone()));
            actix::spawn(events(hub.clone(), cluster.clone(), on_settings.clone()));
            actix::spawn(pings(cluster.clone()));
            actix::spawn(renew_leases(hub.clone(), cluster.clone()));
            actix::spawn(watch_peers(hub, cluster));
            // A lost invalidation heals by itself: the rules are re-read now
            // and then (sites expire from their cache within seconds).
            let mut every = tokio::time::interval(SETTINGS_POLL);
            loop {
                every.tick().await;
                on_settings(SettingsChange::Rules);
            }
        });
        Self { arbiter }
    }

    pub fn stop(self) {
        self.arbiter.stop();
    }
}

async fn commands(hub: Arc<Hub>, cluster: Arc<Cluster>) {
    let Ok(mut requests) = cluster.bus.subscribe(subject::commands(cluster.node_id())).await else {
        return tracing::error!("could not subscribe to this node's commands");
    };
    while let Some(request) = requests.next().await {
        metrics::counter!("chathub_bus_messages_total", "direction" => "received").increment(1);
        let (hub, cluster) = (hub.clone(), cluster.clone());
        actix::spawn(async move {
            let answer = match serde_json::from_slice::<Command>(&request.payload) {
                Ok(command) => answer(&hub, &cluster, command).await,
                Err(e) => {
                    tracing::warn!(error = %e, "an undecodable command on the bus");
                    Some(Reply::NotHere)
                }
            };
            if let (Some(reply_to), Some(answer)) = (request.reply, answer) {
                let payload = serde_json::to_vec(&answer).expect("replies encode");
                cluster.bus.publish(reply_to.to_string(), None, payload.into());
            }
        });
    }
}

/// Carries out one command through the local actor (`None`: no answer).
async fn answer(hub: &Arc<Hub>, cluster: &Arc<Cluster>, command: Command) -> Option<Reply> {
    let id = command.session();
    // Nothing to start an actor for.
    match command {
        Command::Detach { node, conn, .. } => {
            drop_proxy(hub, cluster, &node, conn);
            return None;
        }
        Command::VisitorTyping { on, .. } => {
            hub.live(id).inspect(|s| s.visitor_typing(on));
            return None;
        }
        Command::StaffTyping { on, .. } => {
            hub.live(id).inspect(|s| s.staff_typing(on));
            return None;
        }
        _ => {}
    }
    let session = match hub.session_here(id).await {
        Ok(Some(session)) => session,
        Ok(None) => return Some(Reply::Unknown),
        Err(e) => {
            tracing::debug!(session = %id, error = %e, "a command for a conversation this node does not run");
            return Some(Reply::NotHere);
        }
    };
    let max_chars = hub.config.limits.max_message_chars;
    Some(match command {
        Command::Attach { node, conn, last_seq, .. } => {
            let (proxy, receiver) = outbound::channel(cluster.send_queue);
            cluster.proxies.insert((node.clone(), conn), (id, proxy.clone()));
            actix::spawn(forward(cluster.clone(), node.clone(), conn, id, receiver));
            let seen = SeenUpTo::parse(last_seq, "", "").unwrap_or(SeenUpTo::NOTHING);
            match session.attach_visitor(proxy, seen).await {
                Ok(a) => {
                    let (messages, gap) = within_reply_size(a.messages, a.gap, seen.seq());
                    Reply::Attached { messages, gap, status: a.status.to_string(), agent_typing: a.agent_typing, staff_read_seq: a.staff_read_seq }
                }
                Err(e) => {
                    drop_proxy(hub, cluster, &node, conn);
                    match e {
                        AttachError::InvalidLastSeq { newest } => Reply::InvalidLastSeq { newest },
                        AttachError::Stopped => Reply::NotHere,
                    }
                }
            }
        }
        Command::VisitorMessage { node, conn, client_msg_id, text, attachments, .. } => {
            let Some(proxy) = cluster.proxies.get(&(node, conn)).map(|p| p.1.clone()) else { return Some(Reply::NotHere) };
            let (Ok(client_msg_id), Ok(body)) = (ClientMsgId::parse(&client_msg_id), MessageBody::parse(&text, attachments, max_chars)) else {
                return Some(Reply::Busy);
            };
            match session.visitor_message(&proxy, client_msg_id, body).await {
                Ok(()) => Reply::Taken,
                Err(_) => Reply::Busy,
            }
        }
        Command::StaffSay { author, client_msg_id, text, attachments, .. } => {
            let (Ok(client_msg_id), Ok(body)) = (ClientMsgId::parse(&client_msg_id), MessageBody::parse(&text, attachments, max_chars)) else {
                return Some(Reply::Busy);
            };
            stored(session.staff_say_stored(author, client_msg_id, body).await)
        }
        Command::Takeover { on, .. } => match session.takeover(on).await {
            Ok(handler) => Reply::Handler { handler },
            Err(_) => Reply::Busy,
        },
        Command::TranscriptAfter { after, .. } => {
            let after = SeenUpTo::parse(after, "", "").unwrap_or(SeenUpTo::NOTHING);
            // Too big for one bus message: the caller reads PostgreSQL instead.
            let messages = session.transcript_after(after).await.filter(|m| text_bytes(m) <= MAX_REPLY_TEXT);
            Reply::Transcript { messages }
        }
        Command::StoreExternal { external_id, role, text, attachments, .. } => {
            let Ok(body) = MessageBody::parse(&text, attachments, max_chars) else { return Some(Reply::Busy) };
            stored(session.store_external(external_id, role, body).await)
        }
        Command::Detach { .. } | Command::VisitorTyping { .. } | Command::StaffTyping { .. } => return None,
    })
}

/// Most message text one reply carries (NATS refuses payloads over its
/// `max_payload`, 1 MiB by default; JSON escaping can double text).
const MAX_REPLY_TEXT: usize = 256 * 1024;

fn text_bytes(messages: &[crate::protocol::MessageView]) -> usize {
    messages.iter().map(|m| m.text.len() + 64).sum()
}

/// An attach's backlog cut to what fits in one reply: the oldest messages
/// that do not fit become part of the gap, which the socket's node reads
/// from PostgreSQL (`after` is what the client has seen).
fn within_reply_size(
    mut messages: Vec<crate::protocol::MessageView>,
    gap: Option<(crate::domain::Seq, crate::domain::Seq)>,
    after: crate::domain::Seq,
) -> (Vec<crate::protocol::MessageView>, Option<(crate::domain::Seq, crate::domain::Seq)>) {
    let (mut cut, mut size) = (0, text_bytes(&messages));
    while size > MAX_REPLY_TEXT {
        size -= text_bytes(&messages[cut..=cut]);
        cut += 1;
    }
    if cut == 0 {
        return (messages, gap);
    }
    let first_kept = messages.get(cut).map_or(messages[cut - 1].seq + 1, |m| m.seq);
    messages.drain(..cut);
    (messages, Some((gap.map_or(after, |g| g.0), first_kept - 1)))
}

fn stored(outcome: Result<crate::domain::Seq, super::super::persistence::PersistError>) -> Reply {
    match outcome {
        Ok(seq) => Reply::Stored { seq },
        Err(error) => Reply::Failed { error },
    }
}

/// Forgets the proxy of `node`'s socket `conn` and detaches it from its
/// conversation (its close is not forwarded: the socket is gone).
fn drop_proxy(hub: &Hub, cluster: &Cluster, node: &str, conn: ConnId) {
    if let Some((_, (session, proxy))) = cluster.proxies.remove(&(node.to_owned(), conn)) {
        hub.live(session).inspect(|s| s.detach_visitor(proxy.id));
        proxy.close(close::GOING_AWAY, "detached");
    }
}

/// Sends what the conversation queues for a remote socket to its node, in
/// order, until the proxy is closed.
async fn forward(cluster: Arc<Cluster>, node: String, conn: ConnId, session: SessionId, mut receiver: OutboundReceiver) {
    let target = subject::socket_frames(&node);
    let headers = |close: Option<u16>| {
        let mut headers = HeaderMap::new();
        headers.insert(CONN, conn.to_string().as_str());
        headers.insert(OWNER, cluster.node_id());
        headers.insert(SESSION, session.to_string().as_str());
        if let Some(code) = close {
            headers.insert(CLOSE, code.to_string().as_str());
        }
        headers
    };
    loop {
        match receiver.next().await {
            Next::Frame(frame, _) => cluster.bus.publish(target.clone(), Some(headers(None)), frame.into_bytes()),
            Next::Close(code, _) => {
                // Still registered: the conversation closed it (deleted,
                // moved, too slow), so the socket closes too.
                if cluster.proxies.remove(&(node.clone(), conn)).is_some() {
                    cluster.bus.publish(target.clone(), Some(headers(Some(code))), bytes::Bytes::new());
                }
                return;
            }
        }
    }
}

/// The reason a socket closed by a remote owner gives its client.
fn close_reason(code: u16) -> &'static str {
    match code {
        close::SESSION_DELETED => "this conversation was deleted",
        close::SLOW_CONSUMER => "send queue full: reading too slowly",
        close::GOING_AWAY => "server shutting down; reconnect",
        _ => "the conversation moved to another server; reconnect",
    }
}

async fn socket_frames(cluster: Arc<Cluster>) {
    let Ok(mut frames) = cluster.bus.subscribe(subject::socket_frames(cluster.node_id())).await else {
        return tracing::error!("could not subscribe to this node's socket frames");
    };
    while let Some(message) = frames.next().await {
        metrics::counter!("chathub_bus_messages_total", "direction" => "received").increment(1);
        let Some(headers) = message.headers.as_ref() else { continue };
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        let Some(conn) = header(CONN).and_then(|c| c.parse::<ConnId>().ok()) else { continue };
        let close_code = header(CLOSE).and_then(|c| c.parse::<u16>().ok());
        let socket = cluster.remote_sockets.get(&conn).map(|s| s.outbound.clone());
        match (socket, close_code) {
            (Some(outbound), Some(code)) => {
                cluster.remote_sockets.remove(&conn);
                outbound.close(code, close_reason(code));
            }
            (Some(outbound), None) => match ByteString::try_from(message.payload) {
                Ok(frame) => {
                    outbound.send(frame);
                }
                Err(_) => tracing::warn!("a socket frame that is not UTF-8 on the bus"),
            },
            // The socket is gone and its detach was lost: the owner drops its proxy.
            (None, None) => {
                let (Some(owner), Some(session)) = (header(OWNER), header(SESSION).and_then(|s| s.parse().ok())) else { continue };
                let detach = Command::Detach { session: SessionId(session), node: cluster.node_id().to_owned(), conn };
                let payload = serde_json::to_vec(&detach).expect("commands encode");
                cluster.bus.publish(subject::commands(&owner), None, payload.into());
            }
            (None, Some(_)) => {}
        }
    }
}

async fn events(hub: Arc<Hub>, cluster: Arc<Cluster>, on_settings: OnSettings) {
    let Ok(mut events) = cluster.bus.subscribe(subject::EVENTS.to_owned()).await else {
        return tracing::error!("could not subscribe to the cluster's events");
    };
    while let Some(message) = events.next().await {
        metrics::counter!("chathub_bus_messages_total", "direction" => "received").increment(1);
        let event = match serde_json::from_slice::<Event>(&message.payload) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, "an undecodable event on the bus");
                continue;
            }
        };
        if let Some(for_supervisor) = event.for_supervisor() {
            hub.supervisor.event_from_peer(for_supervisor);
        }
        match event {
            Event::SessionDeleted { session } => {
                hub.live(session).inspect(|s| s.deleted());
            }
            Event::StatusChanged { session, status } => {
                hub.live(session).inspect(|s| s.status_changed(status));
            }
            Event::StaffRead { session, seq } => {
                hub.live(session).inspect(|s| s.staff_read(seq));
            }
            Event::RulesChanged => on_settings(SettingsChange::Rules),
            Event::SiteChanged { key } => on_settings(SettingsChange::Site(key)),
            Event::MessageStored { .. }
            | Event::EmailChanged { .. }
            | Event::VisitorRead { .. }
            | Event::ChannelStatus { .. }
            | Event::SessionChanged { .. }
            | Event::Typing { .. } => {}
        }
    }
}

async fn pings(cluster: Arc<Cluster>) {
    let Ok(mut pings) = cluster.bus.subscribe(subject::ping(cluster.node_id())).await else {
        return tracing::error!("could not subscribe to this node's pings");
    };
    while let Some(ping) = pings.next().await {
        if let Some(reply_to) = ping.reply {
            cluster.bus.publish(reply_to.to_string(), None, bytes::Bytes::new());
        }
    }
}

async fn renew_leases(hub: Arc<Hub>, cluster: Arc<Cluster>) {
    let mut every = tokio::time::interval(cluster.lease_renew);
    loop {
        every.tick().await;
        let held = hub.leased_sessions();
        if held.is_empty() {
            continue;
        }
        let ids: Vec<uuid::Uuid> = held.iter().map(|(id, _)| id.0).collect();
        match leases::renew(&cluster.db, cluster.node_id(), &ids, cluster.lease_ttl).await {
            Ok(still) => {
                let still: HashSet<(uuid::Uuid, i64)> = still.into_iter().collect();
                for (id, fence) in held {
                    if !still.contains(&(id.0, fence)) {
                        tracing::warn!(session = %id, "this node lost a conversation's lease; stopping its actor");
                        metrics::counter!("chathub_leases_lost_total").increment(1);
                        hub.lease_lost(id);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not renew this node's leases"),
        }
    }
}

/// After a possible loss of bus traffic: this node's dashboards reload
/// (4008), its remote sockets resume (1012), and the proxies it holds for
/// other nodes' sockets go (those sockets are told, or find out at their
/// next message, and resume).
fn resync(hub: &Hub, cluster: &Cluster) {
    tracing::warn!("live traffic between nodes may have been lost; dashboards and remote sockets here resume");
    hub.supervisor.reload_dashboards();
    move_remote_sockets(cluster, |_| true);
    // Closed while still registered: `forward` sends the close on and forgets them.
    let proxies: Vec<(SessionId, crate::outbound::Outbound)> = cluster.proxies.iter().map(|p| p.value().clone()).collect();
    for (session, proxy) in proxies {
        proxy.close(close::MOVED, close_reason(close::MOVED));
        hub.live(session).inspect(|s| s.detach_visitor(proxy.id));
    }
}

/// Closes (1012) and forgets this node's remote sockets whose owner `gone`
/// names: their clients resume on whichever node runs the conversation now.
fn move_remote_sockets(cluster: &Cluster, gone: impl Fn(&str) -> bool) {
    cluster.remote_sockets.retain(|_, socket| {
        let moved = gone(&socket.owner);
        if moved {
            socket.outbound.close(close::MOVED, close_reason(close::MOVED));
        }
        !moved
    });
}

async fn watch_peers(hub: Arc<Hub>, cluster: Arc<Cluster>) {
    let mut every = tokio::time::interval(WATCH_PEERS_EVERY);
    let mut gaps = cluster.bus.gaps();
    loop {
        every.tick().await;
        // Live traffic may have been lost (NATS went away, a subscription
        // fell behind, the publish queue filled): whatever crosses nodes
        // starts again from PostgreSQL rather than run on with a hole in it.
        if cluster.bus.gaps() != gaps && cluster.bus.is_connected() {
            gaps = cluster.bus.gaps();
            resync(&hub, &cluster);
        }
        let owners: HashSet<String> = cluster.remote_sockets.iter().map(|s| s.owner.clone()).collect();
        for owner in owners {
            if !matches!(cluster.answers(&owner).await, Ok(true)) {
                move_remote_sockets(&cluster, |node| node == owner);
            }
        }
        let nodes: HashSet<String> = cluster.proxies.iter().map(|p| p.key().0.clone()).collect();
        for node in nodes {
            if matches!(cluster.answers(&node).await, Ok(false)) {
                let gone: Vec<ConnId> = cluster.proxies.iter().filter(|p| p.key().0 == node).map(|p| p.key().1).collect();
                for conn in gone {
                    drop_proxy(&hub, &cluster, &node, conn);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageRole;
    use crate::protocol::MessageView;

    fn message(seq: i64, chars: usize) -> MessageView {
        MessageView { seq, role: MessageRole::Visitor, text: "x".repeat(chars), created_at: chrono::Utc::now(), author: None, attachments: Vec::new() }
    }

    /// A backlog too big for one bus message keeps its newest messages and
    /// leaves the rest to PostgreSQL, with nothing lost in between.
    #[test]
    fn an_attach_backlog_too_big_for_the_bus_leaves_its_oldest_messages_to_postgresql() {
        let small: Vec<MessageView> = (5..=7).map(|seq| message(seq, 10)).collect();
        assert_eq!(within_reply_size(small.clone(), None, 4), (small, None));

        let big: Vec<MessageView> = (11..=20).map(|seq| message(seq, 60_000)).collect();
        let (kept, gap) = within_reply_size(big, Some((2, 10)), 2);
        assert!(text_bytes(&kept) <= MAX_REPLY_TEXT && !kept.is_empty());
        let first = kept[0].seq;
        assert_eq!(gap, Some((2, first - 1)), "the gap now reaches the first message kept");
        assert_eq!(kept.last().unwrap().seq, 20);
    }
}
