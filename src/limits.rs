//! Limits a remote peer runs into: open sockets per client IP, hourly
//! allowances (new conversations, uploads) per IP or conversation, and a
//! token bucket per socket. Plain data
//! structures, shared by the sockets and the application state.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Counts open sockets per client IP and refuses past the cap.
pub struct IpLimiter {
    open: DashMap<IpAddr, usize>,
    max_per_ip: usize,
}

/// One counted socket; dropping it frees the slot.
pub struct IpSlot {
    limiter: Arc<IpLimiter>,
    ip: IpAddr,
}

impl IpLimiter {
    pub fn new(max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self { open: DashMap::new(), max_per_ip })
    }

    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut count = self.open.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        Some(IpSlot { limiter: self.clone(), ip })
    }
}

impl IpSlot {
    /// The client address this slot counts.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some(mut count) = self.limiter.open.get_mut(&self.ip) {
            *count -= 1;
        }
        self.limiter.open.remove_if(&self.ip, |_, count| *count == 0);
    }
}

/// Keys remembered by a `PerHour` before idle ones are swept.
const MAX_TRACKED_KEYS: usize = 100_000;

/// An hourly allowance per key (client IP, conversation): a bucket of
/// `per_hour` that refills over the hour, 0 turning it off. New
/// conversations per IP use it (Chatwoot allows 6 per 12 h for its widget
/// API; ours is a setting), and so do uploads. Memory is bounded by
/// sweeping keys whose bucket has refilled once `MAX_TRACKED_KEYS` are
/// tracked.
pub struct PerHour<K: std::hash::Hash + Eq> {
    buckets: DashMap<K, RateLimit>,
    per_hour: u32,
}

/// New web conversations per client IP.
pub type NewConversations = PerHour<IpAddr>;

impl<K: std::hash::Hash + Eq> PerHour<K> {
    pub fn new(per_hour: u32) -> Arc<Self> {
        Arc::new(Self { buckets: DashMap::new(), per_hour })
    }

    /// Takes one from `key`'s allowance.
    pub fn allow(&self, key: K) -> bool {
        if self.per_hour == 0 {
            return true;
        }
        if self.buckets.len() >= MAX_TRACKED_KEYS {
            let refill = Duration::from_secs(3600);
            self.buckets.retain(|_, bucket| bucket.last.elapsed() < refill);
        }
        let per_hour = self.per_hour;
        self.buckets.entry(key).or_insert_with(|| RateLimit::per_hour(per_hour)).allow()
    }
}

/// A token bucket: `rate` frames per second sustained, `burst` at once.
pub struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl RateLimit {
    pub fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self { tokens: burst, rate: f64::from(rate.max(1)), burst, last: Instant::now() }
    }

    /// `per_hour` at once, refilled evenly over an hour.
    pub fn per_hour(per_hour: u32) -> Self {
        let burst = f64::from(per_hour.max(1));
        Self { tokens: burst, rate: burst / 3600.0, burst, last: Instant::now() }
    }

    /// Takes a token if one is left.
    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ip_cap_counts_open_slots_and_frees_them_on_drop() {
        let limiter = IpLimiter::new(2);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = limiter.acquire(ip).unwrap();
        let _b = limiter.acquire(ip).unwrap();
        assert!(limiter.acquire(ip).is_none());
        assert!(limiter.acquire("127.0.0.2".parse().unwrap()).is_some());
        drop(a);
        assert!(limiter.acquire(ip).is_some());
    }

    #[test]
    fn new_conversations_are_limited_per_ip_unless_switched_off() {
        let limiter = NewConversations::new(3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!((0..3).all(|_| limiter.allow(ip)));
        assert!(!limiter.allow(ip));
        assert!(limiter.allow("127.0.0.2".parse().unwrap()));
        let unlimited = NewConversations::new(0);
        assert!((0..1000).all(|_| unlimited.allow(ip)));
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_refuses() {
        let mut limit = RateLimit::new(1, 3);
        assert!((0..3).all(|_| limit.allow()));
        assert!(!limit.allow());
    }
}
