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
//! when no target is healthy.

use crate::config::{HashKey, HealthCheck, HealthCheckKind, PoolConfig, Selection};
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

/// FNV-1a over `parts`, then the SplitMix64 finaliser: a fixed, portable hash.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

thread_local! {
    static RNG: std::cell::Cell<u64> = std::cell::Cell::new(
        stable_hash(&[&std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            .to_le_bytes()]) | 1,
    );
}

fn random_u64() -> u64 {
    RNG.with(|c| {
        let mut x = c.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.set(x);
        x
    })
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
            Selection::Random => self.by_weight(random_u64()),
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

    /// Whether any target is healthy.
    pub fn any_healthy(&self) -> bool {
        self.targets.iter().any(Target::is_healthy)
    }
}

/// Where a target base URL connects: (`host`, `port`, TLS).
pub fn target_endpoint(base: &str) -> Option<(String, u16, bool)> {
    let (tls, rest) = if let Some(r) = base.strip_prefix("https://") {
        (true, r)
    } else {
        (false, base.strip_prefix("http://")?)
    };
    let auth = &rest[..rest.find('/').unwrap_or(rest.len())];
    let (host, port) = if let Some(inner) = auth.strip_prefix('[') {
        let end = inner.find(']')?;
        (inner[..end].to_string(), inner[end + 1..].strip_prefix(':'))
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (auth.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None if tls => 443,
        None => 80,
    };
    Some((host, port, tls))
}

/// Probes one target once: a TCP connect, or an HTTP GET of `path` answered
/// with a 2xx or 3xx status, within `timeout`.
pub async fn probe(base: &str, check: &HealthCheckKind, timeout: std::time::Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some((host, port, _tls)) = target_endpoint(base) else {
        return false;
    };
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .ok()?;
        let HealthCheckKind::Http { path } = check else {
            return Some(());
        };
        let host_header = if (port == 80 && base.starts_with("http://"))
            || (port == 443 && base.starts_with("https://"))
        {
            host.clone()
        } else if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: pingora-redirect-health-check\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let got = stream.read(&mut buf[n..]).await.ok()?;
            if got == 0 {
                break;
            }
            n += got;
        }
        let line = std::str::from_utf8(&buf[..n]).ok()?;
        let status: u16 = line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()?;
        (200..400).contains(&status).then_some(())
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(())))
}

/// The background service that health-checks the targets of every pool that
/// has a `health_check`, each on its own interval. It reads the pools from
/// the engine in force at each round, so it follows reloads.
pub struct PoolHealth {
    pub engine: std::sync::Arc<arc_swap::ArcSwap<crate::plugin::Engine>>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for PoolHealth {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        use std::collections::HashMap;
        use std::time::{Duration, Instant};
        let mut due: HashMap<String, Instant> = HashMap::new();
        loop {
            let engine = self.engine.load_full();
            let now = Instant::now();
            let mut probes = Vec::new();
            for pool in &engine.pools {
                let Some(hc) = pool.health_check.clone() else {
                    continue;
                };
                let key = format!("{}\u{0}{:?}", pool.name, hc);
                if due.get(&key).is_some_and(|t| *t > now) {
                    continue;
                }
                due.insert(key, now + hc.interval);
                let timeout = hc
                    .interval
                    .min(Duration::from_secs(1))
                    .max(Duration::from_millis(100));
                for (i, t) in pool.targets.iter().enumerate() {
                    let (pool, base, kind) = (pool.clone(), t.base.clone(), hc.kind.clone());
                    probes.push(tokio::spawn(async move {
                        let up = probe(&base, &kind, timeout).await;
                        let target = &pool.targets[i];
                        if target.is_healthy() != up {
                            log::warn!(
                                "pool {} target {} is now {}",
                                pool.name,
                                target.url,
                                if up { "healthy" } else { "unhealthy" }
                            );
                        }
                        target.set_healthy(up);
                    }));
                }
            }
            for p in probes {
                let _ = p.await;
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PoolTarget;

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
    fn stable_hash_is_fixed() {
        assert_eq!(stable_hash(&[b"a"]), stable_hash(&[b"a"]));
        assert_ne!(stable_hash(&[b"ab"]), stable_hash(&[b"a", b"b"]));
    }
}
