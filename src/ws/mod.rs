//! WebSocket transports: the visitor socket (`/ws/chat`), the staff
//! dashboard socket (`/ws/dashboard`), and what sockets
//! share: the handoff from the HTTP server to a lean socket and the count of
//! open sockets. The wire protocol (`crate::protocol`), the writer queue
//! (`crate::outbound`) and the limits (`crate::limits`) sit on lower floors.

pub mod dashboard;
pub mod handoff;
pub mod transport;
pub mod visitor;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Counts the sockets being served, so shutdown can wait for their closes
/// (they run as their own tasks, outside the HTTP server's bookkeeping).
#[derive(Default)]
pub struct OpenSockets {
    open: AtomicUsize,
    changed: Notify,
}

/// One counted socket; dropping it uncounts it.
pub struct SocketGuard(Arc<OpenSockets>);

impl OpenSockets {
    pub fn track(self: &Arc<Self>) -> SocketGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        SocketGuard(self.clone())
    }

    pub fn count(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Waits until every socket has closed, or `limit` has passed.
    pub async fn wait_closed(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                let changed = self.changed.notified();
                if self.count() == 0 {
                    return;
                }
                changed.await;
            }
        })
        .await
        .is_ok()
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}
