//! Choosing one target of a pool of backup hosts.
//!
//! Pools hand out base URLs, not socket addresses, so they do not go through
//! `pingora-load-balancing` (whose backends are `ip:port`). Three selections:
//!
//! * `round_robin`: an atomic counter over the targets, each repeated by its
//!   weight (weighted round robin);
//! * `random`: a weighted random draw;
//! * `hash`: **weighted rendezvous hashing** (highest random weight): each
//!   target scores `-weight / ln(u)` where `u ∈ (0,1)` comes from a fixed 64-bit
//!   hash (FNV-1a, then the SplitMix64 finaliser) of the key and the target URL,
//!   and the best score wins. The score depends only on the key and the target,
//!   so every instance, every restart and every reload picks the same target,
//!   and adding or removing one target moves only the keys that now score best
//!   on it (about 1/N of them).
//!
//! Unhealthy targets are skipped by every selection; `select` returns `None`
//! when no target is healthy. Health is set by [`crate::health`].

use crate::config::{HashKey, HealthCheck, PoolConfig, Selection};
use crate::request::stable_hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One target of a pool.
#[derive(Debug)]
pub struct Target {
    /// The base URL as configured (the metrics label).
    pub url: String,
    /// Normalised base, without a trailing `/`.
    pub base: String,
    pub weight: u32,
    healthy: AtomicBool,
}

impl Target {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn set_healthy(&self, up: bool) {
        self.healthy.store(up, Ordering::Relaxed);
    }
}

/// A pool: its targets, selection and hash key.
#[derive(Debug)]
pub struct Pool {
    pub name: String,
    pub targets: Vec<Target>,
    pub selection: Selection,
    pub hash_key: HashKey,
    /// `None`: every target counts as healthy.
    pub health_check: Option<HealthCheck>,
    counter: AtomicU64,
    total_weight: u64,
}

impl Pool {
    pub fn new(cfg: &PoolConfig) -> Self {
        let targets: Vec<Target> = cfg
            .targets
            .iter()
            .map(|t| Target {
                url: t.url.clone(),
                base: crate::location::pool_base(&t.url),
                weight: t.weight.max(1),
                healthy: AtomicBool::new(true),
            })
            .collect();
        let total_weight = targets.iter().map(|t| u64::from(t.weight)).sum();
        Pool {
            name: cfg.name.clone(),
            targets,
            selection: cfg.selection,
            hash_key: cfg.hash_key.clone(),
            health_check: cfg.health_check.clone(),
            counter: AtomicU64::new(0),
            total_weight,
        }
    }

    /// Picks a healthy target; `key` is the hash key's value (for `hash`).
    pub fn select(&self, key: &[u8]) -> Option<&Target> {
        match self.selection {
            Selection::Hash => self.rendezvous(key),
            Selection::RoundRobin => {
                let n = self.counter.fetch_add(1, Ordering::Relaxed);
                self.by_weight(n)
            }
            Selection::Random => self.by_weight(fastrand::u64(..)),
        }
    }

    /// The target at position `n` of the weighted sequence, moving on to the
    /// next healthy one when it is down.
    fn by_weight(&self, n: u64) -> Option<&Target> {
        if self.total_weight == 0 {
            return None;
        }
        let mut at = n % self.total_weight;
        let mut start = 0;
        for (i, t) in self.targets.iter().enumerate() {
            if at < u64::from(t.weight) {
                start = i;
                break;
            }
            at -= u64::from(t.weight);
        }
        let len = self.targets.len();
        (0..len)
            .map(|k| &self.targets[(start + k) % len])
            .find(|t| t.is_healthy())
    }

    fn rendezvous(&self, key: &[u8]) -> Option<&Target> {
        self.targets
            .iter()
            .filter(|t| t.is_healthy())
            .map(|t| (Self::score(key, t), t))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, t)| t)
    }

    /// Weighted rendezvous score of `target` for `key`.
    fn score(key: &[u8], target: &Target) -> f64 {
        let h = stable_hash(&[key, target.url.as_bytes()]);
        // u in (0, 1): never 0 (ln) nor 1 (division by zero).
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        -f64::from(target.weight) / u.ln()
    }
}

/// Where a target base URL connects: (`host`, `port`, TLS).
pub fn target_endpoint(base: &str) -> Option<(String, u16, bool)> {
    let uri: http::Uri = base.parse().ok()?;
    let tls = match uri.scheme_str()? {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Some((host.to_string(), port, tls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PoolTarget;
    use crate::request::{hash_key, RequestView};

    fn pool(sel: Selection, targets: &[(&str, u32)]) -> Pool {
        Pool::new(&PoolConfig {
            name: "p".into(),
            targets: targets
                .iter()
                .map(|(u, w)| PoolTarget {
                    url: u.to_string(),
                    weight: *w,
                })
                .collect(),
            selection: sel,
            hash_key: HashKey::ClientIp,
            health_check: None,
        })
    }

    #[test]
    fn round_robin_follows_weights_and_skips_unhealthy() {
        let p = pool(
            Selection::RoundRobin,
            &[("https://a.example", 1), ("https://b.example", 3)],
        );
        let picks: Vec<&str> = (0..8)
            .map(|_| p.select(b"").unwrap().url.as_str())
            .collect();
        assert_eq!(picks.iter().filter(|u| u.contains("a.")).count(), 2);
        p.targets[1].set_healthy(false);
        assert!((0..8).all(|_| p.select(b"").unwrap().url == "https://a.example"));
        p.targets[0].set_healthy(false);
        assert!(p.select(b"").is_none());
    }

    #[test]
    fn hash_is_stable_and_moves_about_one_nth_when_a_target_is_added() {
        let three = pool(
            Selection::Hash,
            &[
                ("https://a.example", 1),
                ("https://b.example", 1),
                ("https://c.example", 1),
            ],
        );
        let four = pool(
            Selection::Hash,
            &[
                ("https://a.example", 1),
                ("https://b.example", 1),
                ("https://c.example", 1),
                ("https://d.example", 1),
            ],
        );
        let mut moved = 0;
        for k in 0..1000u32 {
            let key = format!("10.0.{}.{}", k / 256, k % 256);
            let a = three.select(key.as_bytes()).unwrap().url.clone();
            assert_eq!(three.select(key.as_bytes()).unwrap().url, a);
            let b = &four.select(key.as_bytes()).unwrap().url;
            if *b != a {
                assert_eq!(b, "https://d.example", "a key moved between old targets");
                moved += 1;
            }
        }
        assert!((150..=350).contains(&moved), "moved {moved} of 1000");
    }

    #[test]
    fn hash_keys_come_from_the_header_the_cookie_or_the_client() {
        let mut h = http::HeaderMap::new();
        h.insert("x-user", "u7".parse().unwrap());
        h.append("cookie", "a=1; sid=\"s9\"".parse().unwrap());
        let client = Some("192.0.2.7".parse().unwrap());
        let req = RequestView::new("GET", crate::request::Scheme::Http, None, b"/", None)
            .from_client(client)
            .with_headers(&h);
        assert_eq!(hash_key(&HashKey::Header("x-user".into()), &req), b"u7");
        assert_eq!(hash_key(&HashKey::Cookie("sid".into()), &req), b"\"s9\"");
        assert_eq!(
            hash_key(&HashKey::Cookie("none".into()), &req),
            b"192.0.2.7"
        );
        assert_eq!(hash_key(&HashKey::ClientIp, &req), b"192.0.2.7");
        assert_eq!(
            target_endpoint("https://[::1]:8443"),
            Some(("::1".into(), 8443, true))
        );
        assert_eq!(
            target_endpoint("http://b.example"),
            Some(("b.example".into(), 80, false))
        );
    }

    #[test]
    fn stable_hash_is_fixed() {
        assert_eq!(stable_hash(&[b"a"]), stable_hash(&[b"a"]));
        assert_ne!(stable_hash(&[b"ab"]), stable_hash(&[b"a", b"b"]));
    }
}
