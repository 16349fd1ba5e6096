//! The persistence actor: group commit for every conversation's writes.
//!
//! Inputs: `Persist` (one conversation's new session row, messages, session
//! changes and outbox rows) and `Drain` (shutdown: wait until all is written).
//!
//! Writes from many conversations are merged into one transaction
//! (`store::conversation_writes::write_batch`). The caller's future resolves
//! only after COMMIT, which is what lets a visitor's `ack` mean "stored".
//!
//! Batching is natural group commit: a write goes out at once when fewer than
//! `PERSIST_IN_FLIGHT` transactions are running (default: one per usable
//! core, at most 2); otherwise it waits and joins the next batch. Under
//! load it also *gathers* (`PERSIST_GATHER_US`, `Gathering`): when no
//! transaction runs but the last one carried several writes, the next one
//! starts that long after the last one started, so the writes arriving
//! meanwhile share its commit; a write after a quiet spell goes out at once.
//! The queue is bounded (`PERSIST_QUEUE` rows): past it, `Persist`
//! fails at once with `Overloaded`, and the conversation tells its visitor to
//! retry, rather than buffering without limit while PostgreSQL is slow or
//! down. When a merged batch fails, each write is retried alone, so one bad
//! write cannot fail its neighbours.

use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::notifier::Wake;
use crate::postgres::Db;
use crate::store::conversation_writes::write_batch;
pub use crate::store::conversation_writes::{MessageRow, NewSessionRow, OutboxRow, SessionPatch, SessionWrite};

/// Most transactions running at once by default (each on its own pooled connection).
const MAX_IN_FLIGHT: usize = 2;
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum PersistError {
    #[error("the write queue is full")]
    Overloaded,
    #[error("the database write failed: {0}")]
    Database(String),
    #[error("the persistence actor stopped")]
    Stopped,
    /// The channel message id is already stored in another conversation:
    /// this message can never be stored, so it is not retried.
    #[error("message id {0:?} is already stored in another conversation")]
    Conflict(String),
    /// Several nodes: the conversation's lease moved to another node; this
    /// node's actor must stop (its clients resume on the new owner).
    #[error("the conversation moved to another node")]
    Fenced,
}

impl From<crate::store::StoreError> for PersistError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Fenced(_) => PersistError::Fenced,
            e => PersistError::Database(e.to_string()),
        }
    }
}

/// Writes a conversation's changes; resolves after COMMIT.
#[derive(Message)]
#[rtype(result = "Result<(), PersistError>")]
pub struct Persist(pub SessionWrite);

/// Resolves once nothing is queued or being written.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

type Reply = oneshot::Sender<Result<(), PersistError>>;

pub struct Persistence {
    db: Db,
    /// `TIMEZONE`: the days the AI's response times are counted in.
    tz: chrono_tz::Tz,
    /// Writes waiting for a free transaction slot, in arrival order.
    queue: Vec<(SessionWrite, Reply)>,
    /// Rows queued or being written; bounded by `max_rows`.
    rows: usize,
    /// `PERSIST_QUEUE`: beyond it, new writes are refused with `Overloaded`.
    max_rows: usize,
    /// `PERSIST_BATCH`: most rows merged into one transaction.
    batch_rows: usize,
    in_flight: usize,
    /// `PERSIST_IN_FLIGHT`: most transactions running at once.
    max_in_flight: usize,
    /// `Drain` callers waiting for quiet.
    drain_waiters: Vec<oneshot::Sender<()>>,
    /// Told when committed writes included outbox rows.
    notifier: Option<Recipient<Wake>>,
    gathering: Gathering,
}

/// A transaction of at least this many writes means others are writing
/// too: the next one gathers.
const GATHER_AFTER_WRITES: usize = 2;

/// When the next transaction starts while none runs (`PERSIST_GATHER_US`).
/// On one core, a 2 ms window cut CPU per message by a fifth to a third in
/// fan-out and chat at 1k msg/s, their ack p99 no worse (the ack p50 of chat
/// at 1k rose from 0.9 to 2.3 ms); at 200 msg/s, where most transactions
/// carry one write, nothing changed beyond the spread (docs/benchmarks.md).
#[derive(Debug)]
struct Gathering {
    window: Duration,
    last_start: Option<Instant>,
    last_writes: usize,
    /// A flush is due when the window ends.
    armed: bool,
}

impl Gathering {
    fn new(window: Duration) -> Self {
        Self { window, last_start: None, last_writes: 0, armed: false }
    }

    /// How long the next transaction waits at `now`: until the window after
    /// the last start ends, if that one carried several writes.
    fn wait(&self, now: Instant) -> Option<Duration> {
        if self.last_writes < GATHER_AFTER_WRITES {
            return None;
        }
        let due = self.last_start? + self.window;
        (now < due).then(|| due - now)
    }

    fn started(&mut self, now: Instant, writes: usize) {
        self.last_start = Some(now);
        self.last_writes = writes;
    }
}

impl Persistence {
    pub fn new(db: Db, tz: chrono_tz::Tz, max_rows: usize, batch_rows: usize, notifier: Option<Recipient<Wake>>) -> Self {
        Self {
            db,
            tz,
            queue: Vec::new(),
            rows: 0,
            max_rows,
            batch_rows: batch_rows.max(1),
            in_flight: 0,
            max_in_flight: MAX_IN_FLIGHT,
            drain_waiters: Vec::new(),
            notifier,
            gathering: Gathering::new(Duration::ZERO),
        }
    }

    /// Gathers writes for up to `window` under load (`PERSIST_GATHER_US`;
    /// zero: never waits).
    pub fn with_gathering(mut self, window: Duration) -> Self {
        self.gathering = Gathering::new(window);
        self
    }

    /// At most `n` transactions at once; 0 = one per usable core, at most
    /// `MAX_IN_FLIGHT` (`PERSIST_IN_FLIGHT`).
    pub fn with_in_flight(mut self, n: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.max_in_flight = if n == 0 { cores.clamp(1, MAX_IN_FLIGHT) } else { n };
        self
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.gathering.armed {
            return;
        }
        if self.in_flight == 0 && !self.queue.is_empty() {
            if let Some(wait) = self.gathering.wait(Instant::now()) {
                self.gathering.armed = true;
                ctx.run_later(wait, |actor, ctx| {
                    actor.gathering.armed = false;
                    actor.flush(ctx);
                });
                return;
            }
        }
        while self.in_flight < self.max_in_flight && !self.queue.is_empty() {
            let mut take = 0;
            let mut rows = 0;
            for (write, _) in &self.queue {
                if take > 0 && rows + write.rows() > self.batch_rows {
                    break;
                }
                rows += write.rows();
                take += 1;
            }
            let batch: Vec<(SessionWrite, Reply)> = self.queue.drain(..take).collect();
            self.in_flight += 1;
            self.gathering.started(Instant::now(), take);
            let (db, tz) = (self.db.clone(), self.tz);
            let notifier = self.notifier.clone().filter(|_| batch.iter().any(|(w, _)| !w.outbox.is_empty()));
            ctx.spawn(
                async move {
                    let (writes, replies): (Vec<SessionWrite>, Vec<Reply>) = batch.into_iter().unzip();
                    let outcomes = write_with_isolation(&db, &writes, tz).await;
                    if let Some(notifier) = notifier {
                        notifier.do_send(Wake);
                    }
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(outcome);
                    }
                    rows
                }
                .into_actor(self)
                .map(|rows, actor, ctx| {
                    actor.in_flight -= 1;
                    actor.rows -= rows;
                    actor.flush(ctx);
                    if actor.in_flight == 0 && actor.queue.is_empty() {
                        for waiter in actor.drain_waiters.drain(..) {
                            let _ = waiter.send(());
                        }
                    }
                }),
            );
        }
    }
}

impl Actor for Persistence {
    type Context = Context<Self>;
}

impl Handler<Persist> for Persistence {
    type Result = ResponseFuture<Result<(), PersistError>>;

    fn handle(&mut self, Persist(write): Persist, ctx: &mut Context<Self>) -> Self::Result {
        let rows = write.rows();
        if self.rows + rows > self.max_rows {
            metrics::counter!("chathub_persist_overloaded_total").increment(1);
            return Box::pin(async { Err(PersistError::Overloaded) });
        }
        self.rows += rows;
        let (tx, rx) = oneshot::channel();
        self.queue.push((write, tx));
        self.flush(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(PersistError::Stopped)) })
    }
}

impl Handler<Drain> for Persistence {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        if self.in_flight == 0 && self.queue.is_empty() {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Writes the batch in one transaction; if that fails and there is more than
/// one write, each is retried in a transaction of its own.
async fn write_with_isolation(db: &Db, writes: &[SessionWrite], tz: chrono_tz::Tz) -> Vec<Result<(), PersistError>> {
    let started = std::time::Instant::now();
    match write_batch(db, writes, tz).await {
        Ok(()) => {
            metrics::histogram!("chathub_persist_batch_seconds").record(started.elapsed().as_secs_f64());
            metrics::counter!("chathub_persist_messages_total")
                .increment(writes.iter().map(|w| w.messages.len() as u64).sum());
            vec![Ok(()); writes.len()]
        }
        Err(e) if writes.len() == 1 => {
            tracing::warn!(error = %e, "a write failed");
            vec![Err(e.into())]
        }
        Err(e) => {
            tracing::warn!(error = %e, writes = writes.len(), "a merged batch failed; retrying its writes one by one");
            let mut outcomes = Vec::with_capacity(writes.len());
            for write in writes {
                outcomes.push(
                    write_batch(db, std::slice::from_ref(write), tz)
                        .await
                        .map_err(PersistError::from),
                );
            }
            outcomes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(2);

    #[test]
    fn a_write_after_a_lone_write_or_a_quiet_spell_goes_out_at_once() {
        let start = Instant::now();
        let mut gathering = Gathering::new(WINDOW);
        assert_eq!(gathering.wait(start), None, "nothing written yet");
        gathering.started(start, 1);
        assert_eq!(gathering.wait(start + Duration::from_micros(100)), None, "the last transaction was one write");
        gathering.started(start, 5);
        assert_eq!(gathering.wait(start + WINDOW), None, "the window is over");
        assert_eq!(gathering.wait(start + Duration::from_secs(1)), None);
    }

    #[test]
    fn under_load_the_next_transaction_waits_out_the_window_of_the_last_start() {
        let start = Instant::now();
        let mut gathering = Gathering::new(WINDOW);
        gathering.started(start, GATHER_AFTER_WRITES);
        assert_eq!(gathering.wait(start), Some(WINDOW));
        assert_eq!(gathering.wait(start + Duration::from_micros(1_500)), Some(Duration::from_micros(500)));
        assert_eq!(Gathering::new(Duration::ZERO).wait(start), None, "a zero window never waits");
    }
}
