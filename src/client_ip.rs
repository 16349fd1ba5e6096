//! The client's address for per-IP limits (login throttle, visitor socket
//! cap, new conversations per IP). By default it is the TCP peer. Behind a
//! reverse proxy every client would share the proxy's address, so peers
//! listed in `TRUSTED_PROXIES` may name the client in `X-Forwarded-For` (or
//! the standard `Forwarded: for=`); those headers are ignored from anyone
//! else, since a client can write them itself.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// Addresses (or CIDR ranges) whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `TRUSTED_PROXIES`: a comma-separated list of IPs or CIDRs.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("TRUSTED_PROXIES: {item:?} is not an IP address or CIDR range"))?;
            nets.push(net);
        }
        Ok(Self(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`: the peer itself unless it is trusted; then
    /// the right-most forwarded address that is not a trusted proxy (the
    /// left-most if all are), walking back along the proxy chain.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return canonical(peer);
        }
        let chain: Vec<IpAddr> = forwarded_for.iter().filter_map(|a| parse_address(a)).collect();
        chain
            .iter()
            .rev()
            .find(|ip| !self.trusts(**ip))
            .or(chain.first())
            .copied()
            .map_or(canonical(peer), canonical)
    }

    /// The client of an HTTP request (or WebSocket handshake).
    pub fn of_request(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        if !self.trusts(peer) {
            return Some(canonical(peer));
        }
        let headers = req.headers();
        let mut chain: Vec<String> = headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(|a| a.trim().to_owned()))
            .collect();
        if chain.is_empty() {
            chain = headers
                .get_all("forwarded")
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split([',', ';']).map(str::trim).map(str::to_owned).collect::<Vec<_>>())
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim().eq_ignore_ascii_case("for").then(|| value.trim().trim_matches('"').to_owned())
                })
                .collect();
        }
        let chain: Vec<&str> = chain.iter().map(String::as_str).collect();
        Some(self.client_ip(peer, &chain))
    }
}

/// `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`; anything else (`unknown`,
/// obfuscated `_id`s) is not an address.
fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.rsplit_once(':').and_then(|(host, _port)| host.parse().ok())
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        assert_eq!(trusted.client_ip(ip("203.0.113.9"), &["1.1.1.1"]), ip("203.0.113.9"), "untrusted peer: header ignored");
        assert_eq!(trusted.client_ip(ip("127.0.0.1"), &["198.51.100.7"]), ip("198.51.100.7"));
        // A client can prepend anything; the right-most untrusted hop is the truth.
        assert_eq!(trusted.client_ip(ip("10.0.0.2"), &["6.6.6.6", "198.51.100.7", "10.0.0.9"]), ip("198.51.100.7"));
        assert_eq!(trusted.client_ip(ip("10.0.0.2"), &[]), ip("10.0.0.2"));
        assert_eq!(trusted.client_ip(ip("10.0.0.2"), &["[2001:db8::1]:443"]), ip("2001:db8::1"));
        assert_eq!(trusted.client_ip(ip("10.0.0.2"), &["198.51.100.7:5000"]), ip("198.51.100.7"));
        assert_eq!(TrustedProxies::default().client_ip(ip("127.0.0.1"), &["1.1.1.1"]), ip("127.0.0.1"));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
    }
}
