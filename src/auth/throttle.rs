//! Login throttling. Failed logins are counted per client IP and per
//! account. Past a few failures an account is not locked: each further try
//! must wait a delay that doubles up to a minute, so an attacker can slow the
//! real user down but never lock them out; an IP that keeps failing is
//! refused for the rest of its window.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// The window failures are counted in.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures per IP within the window before that IP is refused.
const MAX_FAILURES_PER_IP: u32 = 30;
/// Failures per account before each try has to wait.
const FREE_FAILURES_PER_ACCOUNT: u32 = 5;
/// The longest an account's next try has to wait.
const MAX_ACCOUNT_DELAY: Duration = Duration::from_secs(60);
/// Entries kept before old ones are swept (bounds memory under a spray).
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
    last: Instant,
}

#[derive(Default)]
pub struct LoginThrottle {
    by_ip: DashMap<IpAddr, Failures>,
    by_account: DashMap<String, Failures>,
}

impl LoginThrottle {
    /// `Err(seconds)` when this attempt must wait.
    pub fn check(&self, ip: IpAddr, account: &str) -> Result<(), u64> {
        let now = Instant::now();
        if let Some(f) = self.by_ip.get(&ip).map(|f| *f) {
            if now.duration_since(f.first) < WINDOW && f.count >= MAX_FAILURES_PER_IP {
                return Err((WINDOW - now.duration_since(f.first)).as_secs().max(1));
            }
        }
        if let Some(f) = self.by_account.get(&account.to_lowercase()).map(|f| *f) {
            if now.duration_since(f.first) < WINDOW && f.count >= FREE_FAILURES_PER_ACCOUNT {
                let doublings = (f.count - FREE_FAILURES_PER_ACCOUNT).min(6);
                let delay = (Duration::from_secs(1) * 2u32.pow(doublings)).min(MAX_ACCOUNT_DELAY);
                let waited = now.duration_since(f.last);
                if waited < delay {
                    return Err((delay - waited).as_secs().max(1));
                }
            }
        }
        Ok(())
    }

    pub fn failed(&self, ip: IpAddr, account: &str) {
        if self.by_ip.len() + self.by_account.len() > MAX_ENTRIES {
            let now = Instant::now();
            self.by_ip.retain(|_, f| now.duration_since(f.first) < WINDOW);
            self.by_account.retain(|_, f| now.duration_since(f.first) < WINDOW);
        }
        bump(&self.by_ip, ip);
        bump(&self.by_account, account.to_lowercase());
    }

    pub fn succeeded(&self, account: &str) {
        self.by_account.remove(&account.to_lowercase());
    }
}

fn bump<K: std::hash::Hash + Eq>(map: &DashMap<K, Failures>, key: K) {
    let now = Instant::now();
    let mut entry = map.entry(key).or_insert(Failures { count: 0, first: now, last: now });
    if now.duration_since(entry.first) >= WINDOW {
        *entry = Failures { count: 0, first: now, last: now };
    }
    entry.count += 1;
    entry.last = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_slows_down_after_a_few_failures_but_is_not_locked() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..FREE_FAILURES_PER_ACCOUNT {
            assert!(throttle.check(ip, "ada").is_ok());
            throttle.failed(ip, "ada");
        }
        let wait = throttle.check(ip, "Ada").unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(throttle.check(ip, "grace").is_ok(), "other accounts are unaffected");
        throttle.succeeded("ada");
        assert!(throttle.check(ip, "ada").is_ok());
    }

    #[test]
    fn an_ip_that_keeps_failing_is_refused() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..MAX_FAILURES_PER_IP {
            throttle.failed(ip, &format!("user{i}"));
        }
        assert!(throttle.check(ip, "someone-new").is_err());
        assert!(throttle.check("10.0.0.3".parse().unwrap(), "someone-new").is_ok());
    }
}
