//! Login throttling. Attempts are counted per client IP and per account
//! *when they are admitted*, before the password is hashed, so parallel
//! requests cannot all pass the check before the first failure is counted.
//! A successful login gives its attempt back.
//!
//! Nothing is locked out: past a few failures an account's next try must
//! wait a delay that doubles up to a minute; past `FREE_FAILURES_PER_IP` an
//! IP's next try must wait a delay that doubles up to `MAX_IP_DELAY`. An
//! attacker can slow the real user down, never shut them out: a correct
//! password always gets in once the delay has passed (behind a reverse proxy
//! that shares one address, set `TRUSTED_PROXIES` so each client counts apart).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// The window failures are counted in.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures per IP within the window before each try from it has to wait.
const FREE_FAILURES_PER_IP: u32 = 30;
/// The longest an IP's next try has to wait.
const MAX_IP_DELAY: Duration = Duration::from_secs(30);
/// Failures per account before each try has to wait.
const FREE_FAILURES_PER_ACCOUNT: u32 = 5;
/// The longest an account's next try has to wait.
const MAX_ACCOUNT_DELAY: Duration = Duration::from_secs(60);
/// Entries kept before old ones are swept (bounds memory under a spray).
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy)]
struct Failures {
    /// Attempts admitted in the window that did not succeed (including ones
    /// still being checked).
    count: u32,
    first: Instant,
    /// When the last attempt was admitted.
    last: Instant,
}

impl Failures {
    fn new(now: Instant) -> Self {
        Self { count: 0, first: now, last: now }
    }

    fn expire(&mut self, now: Instant) {
        if now.duration_since(self.first) >= WINDOW {
            *self = Self::new(now);
        }
    }

    /// Seconds to wait before the next attempt, if any: past `free`
    /// failures, a delay doubling from 1 s up to `max` since the last one.
    fn wait(&self, now: Instant, free: u32, max: Duration) -> Option<u64> {
        if self.count < free {
            return None;
        }
        let doublings = (self.count - free).min(10);
        let delay = (Duration::from_secs(1) * 2u32.pow(doublings)).min(max);
        let waited = now.duration_since(self.last);
        (waited < delay).then(|| (delay - waited).as_secs().max(1))
    }

    fn admit(&mut self, now: Instant) {
        self.count += 1;
        self.last = now;
    }
}

/// An admitted login attempt; report how it ended with `succeeded` or
/// `abandoned` (a failure needs no call: it is already counted).
#[must_use]
pub struct Attempt {
    ip: IpAddr,
    account: String,
}

#[derive(Default)]
pub struct LoginThrottle {
    by_ip: DashMap<IpAddr, Failures>,
    by_account: DashMap<String, Failures>,
}

impl LoginThrottle {
    /// Admits an attempt (and counts it as a failure until told otherwise),
    /// or `Err(seconds)` when it must wait.
    pub fn begin(&self, ip: IpAddr, account: &str) -> Result<Attempt, u64> {
        let now = Instant::now();
        if self.by_ip.len() + self.by_account.len() > MAX_ENTRIES {
            self.by_ip.retain(|_, f| now.duration_since(f.first) < WINDOW);
            self.by_account.retain(|_, f| now.duration_since(f.first) < WINDOW);
        }
        let account = account.to_lowercase();
        // Both entries are held while deciding, so concurrent attempts are
        // admitted one after the other (always IP first: no lock-order cycle).
        let mut by_ip = self.by_ip.entry(ip).or_insert_with(|| Failures::new(now));
        by_ip.expire(now);
        let mut by_account = self.by_account.entry(account.clone()).or_insert_with(|| Failures::new(now));
        by_account.expire(now);
        let wait = by_ip
            .wait(now, FREE_FAILURES_PER_IP, MAX_IP_DELAY)
            .max(by_account.wait(now, FREE_FAILURES_PER_ACCOUNT, MAX_ACCOUNT_DELAY));
        if let Some(seconds) = wait {
            return Err(seconds);
        }
        by_ip.admit(now);
        by_account.admit(now);
        Ok(Attempt { ip, account })
    }

    /// The password was right: the account's failures are forgiven and the
    /// attempt is not held against the IP.
    pub fn succeeded(&self, attempt: Attempt) {
        self.by_account.remove(&attempt.account);
        give_back(&self.by_ip, &attempt.ip);
    }

    /// The password was never checked (hashing was busy): the attempt does
    /// not count against anyone.
    pub fn abandoned(&self, attempt: Attempt) {
        give_back(&self.by_ip, &attempt.ip);
        give_back(&self.by_account, &attempt.account);
    }
}

fn give_back<K: std::hash::Hash + Eq>(map: &DashMap<K, Failures>, key: &K) {
    if let Some(mut entry) = map.get_mut(key) {
        entry.count = entry.count.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_slows_down_after_a_few_failures_but_is_not_locked() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..FREE_FAILURES_PER_ACCOUNT {
            let _failed = throttle.begin(ip, "ada").unwrap();
        }
        let wait = throttle.begin(ip, "Ada").err().unwrap();
        assert!((1..=60).contains(&wait));
        assert!(throttle.begin(ip, "grace").is_ok(), "other accounts are unaffected");
    }

    #[test]
    fn attempts_are_counted_before_the_password_is_checked() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        // 100 parallel attempts from one IP, none finished yet.
        let admitted: Vec<Attempt> = (0..100).filter_map(|i| throttle.begin(ip, &format!("user{i}")).ok()).collect();
        assert_eq!(admitted.len(), FREE_FAILURES_PER_IP as usize, "only the free ones; the rest must wait");
        // 60 parallel attempts on one account from 60 addresses.
        let on_one_account =
            (0..60u8).filter(|i| throttle.begin(IpAddr::from([10, 1, 0, *i]), "victim").is_ok()).count();
        assert_eq!(on_one_account, FREE_FAILURES_PER_ACCOUNT as usize);
    }

    #[test]
    fn a_busy_ip_is_slowed_not_refused() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.3".parse().unwrap();
        let mut now_admitted = 0;
        for i in 0..200 {
            if throttle.begin(ip, &format!("guess{i}")).is_ok() {
                now_admitted += 1;
            }
        }
        let wait = throttle.begin(ip, "someone-real").err().expect("the IP is slowed");
        assert!(wait <= MAX_IP_DELAY.as_secs(), "never refused for longer than the longest delay: {wait}");
        assert_eq!(now_admitted, FREE_FAILURES_PER_IP);
        assert!(throttle.begin("10.0.0.4".parse().unwrap(), "someone-new").is_ok());
    }

    #[test]
    fn success_and_abandon_give_the_attempt_back() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        for _ in 0..50 {
            let attempt = throttle.begin(ip, "ada").unwrap();
            throttle.succeeded(attempt);
            let attempt = throttle.begin(ip, "ada").unwrap();
            throttle.abandoned(attempt);
        }
        assert!(throttle.begin(ip, "ada").is_ok());
    }
}
