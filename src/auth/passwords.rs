//! argon2id password hashing with the RustCrypto defaults (m = 19 MiB, t = 2,
//! p = 1: the OWASP minimum).
//!
//! Each hash needs ~19 MiB of working memory and tens of ms of CPU, and the
//! login route is open to anyone, so hashing is a bounded resource: it runs
//! on a fixed set of `HASH_THREADS` OS threads (one per core), never on the
//! async workers or tokio's blocking pool (whose 512 threads would each keep
//! a 19 MiB arena: 100 parallel logins once took the process to 2 GB). At
//! most `HASH_QUEUE` checks wait; a check that cannot be queued, or that
//! waited past `HASH_DEADLINE`, fails with `Busy` at once (the caller answers
//! 503 with `Retry-After`). Memory for hashing is therefore at most
//! `HASH_THREADS` × 19 MiB, however many requests arrive.
//!
//! Each hashing thread also keeps its 19 MiB of Argon2 working memory and
//! reuses it for every hash (`hash_password_into_with_memory`), instead of
//! allocating and freeing it each time: glibc would keep every freed block
//! in whichever malloc arena it came from, and threads wander between
//! arenas, so 22 checks once left 388 MB resident.

use std::cell::RefCell;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, PasswordHash, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use crate::error::ApiError;

/// Checks waiting for a hashing thread; past it a check is `Busy` at once.
const HASH_QUEUE: usize = 16;
/// A check that waited longer than this is answered `Busy` without hashing
/// (its client has likely given up, and hashing it would only add to the backlog).
const HASH_DEADLINE: Duration = Duration::from_secs(3);

/// Shortest password accepted for a staff account.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_CHARS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")]
    BadLength,
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("too many password checks at once; retry shortly")]
    Busy,
}

/// Largest Argon2 memory a stored hash may ask for (KiB); a stored hash
/// asking for more is refused rather than allocated.
const MAX_M_COST_KIB: u32 = 256 * 1024;

thread_local! {
    /// This hashing thread's Argon2 working memory, reused by every hash.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs Argon2 for `params` in this thread's reused memory.
fn argon2_into(algorithm: Algorithm, version: Version, params: Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> bool {
    if params.m_cost() > MAX_M_COST_KIB {
        return false;
    }
    let blocks = params.block_count();
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::new());
        }
        Argon2::new(algorithm, version, params).hash_password_into_with_memory(password, salt, out, &mut memory[..blocks]).is_ok()
    })
}

/// A new PHC string for `password` with the default parameters.
fn hash_in_place(password: &[u8]) -> Result<String, PasswordError> {
    let params = Params::default();
    let salt: [u8; 16] = rand::random();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    if !argon2_into(Algorithm::Argon2id, Version::V0x13, params.clone(), password, &salt, &mut out) {
        return Err(PasswordError::Hash("argon2 refused its input".into()));
    }
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| PasswordError::Hash(e.to_string()))?,
        salt: Some(Salt::new(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?),
        hash: Some(Output::new(&out).map_err(|e| PasswordError::Hash(e.to_string()))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored` (constant-time compare).
fn verify_in_place(password: &[u8], stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else { return false };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else { return false };
    let Ok(version) = hash.version.map_or(Ok(Version::default()), Version::try_from) else { return false };
    let Ok(params) = Params::try_from(&hash) else { return false };
    let mut out = vec![0u8; expected.len()];
    argon2_into(algorithm, version, params, password, salt, &mut out) && bool::from(out.ct_eq(expected.as_bytes()))
}

/// How the HTTP edge answers a password that could not be checked or set.
impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::BadLength => ApiError::invalid("invalid_password", e.to_string()),
            PasswordError::Busy => ApiError::Busy { retry_after_secs: 1 },
            PasswordError::Hash(_) => ApiError::Internal(e.into()),
        }
    }
}

/// Hashing threads: one per core.
fn hash_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A unit of hashing work and when it was queued.
struct Job {
    queued_at: Instant,
    work: Box<dyn FnOnce(bool) + Send>,
}

/// The fixed pool of hashing threads and its bounded queue.
struct HashPool {
    jobs: SyncSender<Job>,
}

impl HashPool {
    fn global() -> &'static HashPool {
        static POOL: OnceLock<HashPool> = OnceLock::new();
        POOL.get_or_init(|| HashPool::new(hash_threads(), HASH_QUEUE))
    }

    /// `threads` hashing threads sharing a queue of `queue` checks.
    fn new(threads: usize, queue: usize) -> HashPool {
        let (jobs, receiver) = mpsc::sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("chathub-hash-{i}"))
                .spawn(move || loop {
                    let job = match receiver.lock().map(|r| r.recv()) {
                        Ok(Ok(job)) => job,
                        _ => return,
                    };
                    let in_time = job.queued_at.elapsed() <= HASH_DEADLINE;
                    (job.work)(in_time);
                })
                .expect("starting a password hashing thread");
        }
        HashPool { jobs }
    }

    /// Runs `work` on a hashing thread; `Busy` if the queue is full or the
    /// job waited past its deadline.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, PasswordError> {
        let (tx, rx) = oneshot::channel();
        let job = Job {
            queued_at: Instant::now(),
            work: Box::new(move |in_time| {
                let _ = tx.send(in_time.then(work));
            }),
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("chathub_password_checks_busy_total").increment(1);
                return Err(PasswordError::Busy);
            }
            Err(TrySendError::Disconnected(_)) => return Err(PasswordError::Hash("hashing threads stopped".into())),
        }
        match rx.await {
            Ok(Some(value)) => Ok(value),
            Ok(None) => {
                metrics::counter!("chathub_password_checks_busy_total").increment(1);
                Err(PasswordError::Busy)
            }
            Err(_) => Err(PasswordError::Hash("a hashing thread stopped".into())),
        }
    }
}

pub fn validate(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        Ok(())
    } else {
        Err(PasswordError::BadLength)
    }
}

/// Hashes a password to a PHC string (salt chosen by argon2).
pub async fn hash(password: String) -> Result<String, PasswordError> {
    validate(&password)?;
    HashPool::global().run(move || hash_in_place(password.as_bytes())).await?
}

/// Checks a password against a stored PHC string. With no stored hash (an
/// unknown user) it verifies against a fixed dummy hash, so the answer takes
/// the same time either way and does not reveal which usernames exist.
/// `Err(Busy)` when the hashing threads are saturated: nothing was checked.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, PasswordError> {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Ok(false);
    }
    HashPool::global()
        .run(move || {
            let known = stored.is_some();
            let phc = stored.unwrap_or_else(|| dummy_hash().to_owned());
            verify_in_place(password.as_bytes(), &phc) && known
        })
        .await
}

/// A hash of a random password, made once, for unknown-user timing parity.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_in_place(super::random_token(24).as_bytes()).expect("hashing a random password"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let phc = hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), Some(phc.clone())).await.unwrap());
        assert!(!verify("wrong horse!".into(), Some(phc)).await.unwrap());
        assert!(!verify("correct horse".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_flood_of_checks_is_refused_past_the_queue_instead_of_piling_up() {
        // A pool of its own, so the other tests' checks are not crowded out.
        let (threads, queue) = (1, 4);
        let pool = HashPool::new(threads, queue);
        let phc = hash("correct horse".into()).await.unwrap();
        let checks = (0..(threads + queue) * 4).map(|_| {
            let phc = phc.clone();
            pool.run(move || verify_in_place(b"wrong horse!", &phc))
        });
        let outcomes = futures_util::future::join_all(checks).await;
        let busy = outcomes.iter().filter(|o| matches!(o, Err(PasswordError::Busy))).count();
        let checked = outcomes.iter().filter(|o| matches!(o, Ok(false))).count();
        assert!(busy > 0, "some checks must be refused");
        assert!(checked <= threads + queue, "{checked} checks ran: more than the queue holds");
        assert_eq!(busy + checked, outcomes.len());
    }

    #[tokio::test]
    async fn hashes_made_by_the_argon2_crate_itself_still_verify() {
        use argon2::password_hash::PasswordHasher;
        let phc = Argon2::default().hash_password(b"an older hash").unwrap().to_string();
        assert!(verify("an older hash".into(), Some(phc.clone())).await.unwrap());
        assert!(!verify("another password".into(), Some(phc)).await.unwrap());
        let ours = hash("made here, read there".into()).await.unwrap();
        use argon2::password_hash::PasswordVerifier;
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"made here, read there", &parsed).is_ok());
    }

    #[tokio::test]
    async fn short_passwords_are_refused() {
        assert!(matches!(hash("short".into()).await, Err(PasswordError::BadLength)));
    }
}
