//! The one writer queue per socket. Producers (conversation actors, the
//! supervisor) `send` pre-encoded frames without waiting; the socket task
//! drains the queue. The queue is bounded: when it is full the peer is not
//! reading fast enough, and instead of growing memory the socket is closed
//! with `SLOW_CONSUMER` (the client resumes from its last seq).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytestring::ByteString;
use tokio::sync::Notify;

use crate::protocol::close;
use crate::domain::{Seq, SessionId};

/// Identifies one socket connection within the process.
pub type ConnId = u64;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// A queue that has held more than this many frames gives the space back
/// once it is empty again: an idle socket keeps no buffer.
const KEEP_CAPACITY: usize = 8;

/// Identifies a conversation message, so a socket that already sent it (in a
/// resume backlog) can drop the live copy.
pub type DedupeKey = (SessionId, Seq);

type Queued = (ByteString, Option<DedupeKey>);

/// Frames waiting for the socket task. A plain `VecDeque` behind a mutex
/// (held for a push or a pop, never across an await) rather than a channel:
/// an empty `VecDeque` allocates nothing, and most sockets are idle.
struct Shared {
    queue: Mutex<Queue>,
    capacity: usize,
    /// Set once: the close code and reason the socket task must close with.
    close: OnceLock<(u16, &'static str)>,
    wake: Notify,
}

struct Queue {
    frames: VecDeque<Queued>,
    /// The socket task is gone: nothing will read what is queued.
    receiver_gone: bool,
}

/// The producer side; cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    pub id: ConnId,
    shared: Arc<Shared>,
}

/// The socket task's side.
pub struct OutboundReceiver {
    shared: Arc<Shared>,
}

/// What the socket task should do next.
pub enum Next {
    Frame(ByteString, Option<DedupeKey>),
    Close(u16, &'static str),
}

pub fn channel(capacity: usize) -> (Outbound, OutboundReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue { frames: VecDeque::new(), receiver_gone: false }),
        capacity: capacity.max(1),
        close: OnceLock::new(),
        wake: Notify::new(),
    });
    let id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
    (Outbound { id, shared: shared.clone() }, OutboundReceiver { shared })
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the queue half-changed.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Outbound {
    /// Queues a frame. Returns false if the socket is gone or was just
    /// closed for falling behind.
    pub fn send(&self, frame: ByteString) -> bool {
        self.enqueue((frame, None))
    }

    /// Queues a conversation message frame with its dedupe key.
    pub fn send_keyed(&self, frame: ByteString, key: DedupeKey) -> bool {
        self.enqueue((frame, Some(key)))
    }

    fn enqueue(&self, item: Queued) -> bool {
        if self.shared.close.get().is_some() {
            return false;
        }
        {
            let mut queue = self.shared.queue();
            if queue.receiver_gone {
                return false;
            }
            if queue.frames.len() >= self.shared.capacity {
                drop(queue);
                metrics::counter!("chathub_ws_slow_consumer_closes_total").increment(1);
                self.close(close::SLOW_CONSUMER, "send queue full: reading too slowly");
                return false;
            }
            queue.frames.push_back(item);
        }
        self.shared.wake.notify_one();
        true
    }

    /// Asks the socket task to close with `code` (first request wins).
    pub fn close(&self, code: u16, reason: &'static str) {
        if self.shared.close.set((code, reason)).is_ok() {
            self.shared.wake.notify_one();
        }
    }

    pub fn is_gone(&self) -> bool {
        self.shared.close.get().is_some() || self.shared.queue().receiver_gone
    }
}

impl OutboundReceiver {
    /// The next frame if one is already queued (or the pending close).
    pub fn try_next(&mut self) -> Option<Next> {
        if let Some(&(code, reason)) = self.shared.close.get() {
            return Some(Next::Close(code, reason));
        }
        let mut queue = self.shared.queue();
        let next = queue.frames.pop_front();
        if queue.frames.is_empty() && queue.frames.capacity() > KEEP_CAPACITY {
            queue.frames = VecDeque::new();
        }
        next.map(|(frame, key)| Next::Frame(frame, key))
    }

    /// The next frame to write, or the close to perform. A pending close wins
    /// over queued frames: a slow consumer is cut off, not drained.
    pub async fn next(&mut self) -> Next {
        loop {
            if let Some(next) = self.try_next() {
                return next;
            }
            // `notify_one` leaves a permit when nobody waits, so a frame
            // queued between the check above and this await still wakes us.
            self.shared.wake.notified().await;
        }
    }
}

impl Drop for OutboundReceiver {
    fn drop(&mut self) {
        let mut queue = self.shared.queue();
        queue.receiver_gone = true;
        queue.frames = VecDeque::new();
    }
}
