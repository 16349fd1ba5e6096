//! Sites: the websites a widget may sit on, each with its public key, the
//! origins allowed to open its socket, and its widget settings; and the
//! short-lived cache the widget's requests read them from.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde::Serialize;
use uuid::Uuid;

use crate::postgres::Db;

/// The site used when a widget names none.
pub const DEFAULT_SITE: &str = "default";

#[derive(Debug, Clone, Serialize)]
pub struct Site {
    #[serde(skip)]
    pub id: Uuid,
    pub key: String,
    pub name: String,
    #[serde(skip)]
    pub allowed_origins: Vec<String>,
    pub greeting: Option<String>,
    pub color: String,
    pub position: String,
    pub prechat_form: bool,
}

impl Site {
    /// `*` allows any origin. A restricted site refuses a request with no
    /// `Origin` header too (browsers always send one on a socket handshake).
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        if self.allowed_origins.iter().any(|o| o == "*") {
            return true;
        }
        origin.is_some_and(|origin| {
            self.allowed_origins.iter().any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
        })
    }
}

/// How long a site read from PostgreSQL is used before it is read again.
/// Changes made through this node's API take effect at once (`forget`);
/// this bounds how long another node's change takes to show.
const CACHE_TTL: Duration = Duration::from_secs(5);

/// Sites by key, for the two places every visitor goes through (the
/// widget's settings and the socket handshake), which otherwise cost a
/// database round trip per connection. Only sites that exist are kept, so
/// the cache is bounded by the sites admins created, whatever keys clients
/// send.
#[derive(Default)]
pub struct SiteCache {
    sites: DashMap<String, (Arc<Site>, Instant)>,
}

impl SiteCache {
    /// The site with `key`, from memory if it was read in the last `CACHE_TTL`.
    pub async fn find(&self, db: &Db, key: &str) -> anyhow::Result<Option<Arc<Site>>> {
        if let Some(entry) = self.sites.get(key) {
            if entry.1.elapsed() < CACHE_TTL {
                return Ok(Some(entry.0.clone()));
            }
        }
        let Some(site) = find_by_key(db, key).await? else {
            self.sites.remove(key);
            return Ok(None);
        };
        let site = Arc::new(site);
        self.sites.insert(key.to_owned(), (site.clone(), Instant::now()));
        Ok(Some(site))
    }

    /// A site changed or was deleted here: read it again next time.
    pub fn forget(&self, key: &str) {
        self.sites.remove(key);
    }
}

pub async fn find_by_key(db: &Db, key: &str) -> anyhow::Result<Option<Site>> {
    let row = crate::store::sites::find(db, key).await?;
    Ok(row.map(|r| Site {
        id: r.id,
        key: r.key,
        name: r.name,
        allowed_origins: r.allowed_origins,
        greeting: r.greeting,
        color: r.color,
        position: r.position,
        prechat_form: r.prechat_form,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(origins: &[&str]) -> Site {
        Site {
            id: Uuid::nil(),
            key: "k".into(),
            name: "n".into(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            greeting: None,
            color: "#000".into(),
            position: "right".into(),
            prechat_form: false,
        }
    }

    #[test]
    fn origins_are_checked_against_the_allow_list() {
        assert!(site(&["*"]).allows_origin(None));
        let shop = site(&["https://shop.example.com/"]);
        assert!(shop.allows_origin(Some("https://shop.example.com")));
        assert!(!shop.allows_origin(Some("https://evil.example")));
        assert!(!shop.allows_origin(None));
        assert!(!site(&[]).allows_origin(Some("https://shop.example.com")));
    }
}
