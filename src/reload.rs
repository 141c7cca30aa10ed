//! Reload: SIGHUP, or a change of a watched file → load and compile on a
//! thread of its own → swap atomically.
//!
//! The [`Reloader`] is a Pingora background service. On SIGHUP (and, with
//! `watch = true`, when the configuration file or a list it names changes:
//! polled by path, so editors that write a new file and rename it over the
//! old one are seen, and debounced until the file stops changing) it reads,
//! compiles and lints the configuration on a new OS thread, never on the
//! runtime that serves traffic; when nothing the rules are compiled from
//! changed (a maintenance flip, an upstream change) the compiled rules are
//! kept and nothing is compiled. A new upstream gets one round of health
//! checks there before it is used, and pool targets keep the health they had.
//! Only then is the new [`Snapshot`] (rules, pools, routing: upstream,
//! failover, maintenance) swapped in, in one swap; requests in flight finish
//! on the snapshot they loaded.
//! A configuration that does not load leaves the running one in place; the
//! reason is logged with its places and counted
//! (`pingora_redirect_config_reloads_total{result="failure"}`,
//! `pingora_redirect_config_last_reload_successful 0`). Listeners, threads
//! and the admin address cannot change without a restart: a change is logged
//! and otherwise ignored.

use crate::config::{Config, ServerConfig};
use crate::health::{probe, probe_timeout};
use crate::load::{stamp, Stamp};
use crate::metrics;
use crate::problem::Problem;
use crate::snapshot::{Shared, Snapshot};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often watched files are looked at.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// The reload service.
pub struct Reloader {
    pub path: PathBuf,
    /// The snapshot in force: its configuration says what to watch.
    pub shared: Shared,
    /// `[server]` as the process started with it: what a restart-only
    /// change is compared with.
    pub started: ServerConfig,
    /// `[tls] listen` as the process started with it.
    pub started_tls: Vec<std::net::SocketAddr>,
}

/// `[tls] listen` of `cfg` (empty without `[tls]`).
pub fn tls_listen(cfg: &Config) -> Vec<std::net::SocketAddr> {
    cfg.tls
        .as_ref()
        .map(|t| t.listen.clone())
        .unwrap_or_default()
}

fn watched_files(cfg: &Config) -> Vec<PathBuf> {
    let mut files = vec![cfg.path.clone()];
    files.extend(cfg.lists.iter().map(|l| l.file.clone()));
    for c in &cfg.certificates {
        files.push(c.cert.clone());
        files.push(c.key.clone());
    }
    files
}

/// What changed in `[server]` that only a restart applies.
fn needs_restart(old: &ServerConfig, new: &ServerConfig) -> Vec<&'static str> {
    macro_rules! changed {
        ($($field:ident),*) => {
            [$((stringify!($field), old.$field != new.$field)),*]
        };
    }
    let fields = changed!(
        listen,
        threads,
        admin,
        h2c,
        grace_period,
        upgrade_sock,
        pid_file,
        header_timeout,
        body_timeout,
        idle_timeout,
        max_connections
    );
    fields
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(name, _)| name)
        .collect()
}

/// How much of the running rule set a reload kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Nothing the rules are compiled from changed: the set itself.
    All,
    /// Some of its layers (`[[list]]`s, runs of `[[redirect]]` tables):
    /// how many of how many, and how many rules they hold.
    Layers {
        kept: usize,
        of: usize,
        rules: usize,
    },
    /// Nothing: everything was compiled.
    Nothing,
}

impl Kept {
    /// The `rules` label of `pingora_redirect_config_reload_duration_seconds`.
    pub fn label(&self) -> &'static str {
        match self {
            Kept::All => "kept",
            Kept::Layers { .. } => "partly_kept",
            Kept::Nothing => "compiled",
        }
    }
}

/// A new snapshot, and what of the old one's rules it kept.
pub struct Prepared {
    pub snapshot: Snapshot,
    pub kept: Kept,
    /// Whether the chain lint of the new rules is still to run (after the
    /// swap, see [`lint_later`]).
    pub lint_later: bool,
}

/// Loads `path` and builds the snapshot requests will read; run on a thread
/// of its own. When nothing the rules are compiled from changed (the
/// `[[redirect]]` tables, the lists and their files' bytes, `[defaults]`,
/// the pools: a maintenance flip, an upstream or log change), the compiled
/// rules of `old` are kept, so the flip does not wait for a million rows to
/// compile. Else only the layers that changed are compiled (each
/// `[[list]]`, and each run of `[[redirect]]` tables between them, is one;
/// a list file found as it was is not even read again), and the loops are
/// looked for from what changed ([`crate::rules::lint::loops_after`]); the
/// chain warnings come after the swap. `old` also carries pool health over.
pub fn prepare(path: &Path, old: &Snapshot) -> Result<Prepared, Vec<Problem>> {
    use crate::load::{list_digest, read_list, read_sources_with, rules_key_with};
    // List files found as they were are not read again for the key.
    let mut files = Vec::new();
    let mut sources = read_sources_with(path, |l| {
        read_list(&l.file, &mut files, Some(&old.list_files))
    })
    .map_err(|p| vec![p])?;
    let mut digests: Vec<u64> = files.iter().map(|f| f.digest).collect();
    let key = rules_key_with(&sources, &digests);
    let (tls, tls_problems) =
        crate::tls::build(&sources.config, &sources.certificates, crate::unix_now());
    // Rules as they were but a certificate that does not load: fail now,
    // without compiling what would be thrown away.
    if old.rules_key == Some(key) && tls_problems.iter().any(Problem::is_error) {
        return Err(sources
            .problems
            .into_iter()
            .chain(tls_problems)
            .filter(Problem::is_error)
            .collect());
    }
    let keep = old.rules_key == Some(key) && !sources.problems.iter().any(Problem::is_error);
    let mut kept = Kept::All;
    let mut later = false;
    let snap = if keep {
        for w in sources.problems.iter().chain(&tls_problems) {
            log::warn!("{w}");
        }
        Snapshot::with_rules(sources.config, old.rules.clone(), Some(key), files, tls)
    } else {
        // Compiling a large set takes a while: at nice 2, so that a saturated
        // core does not starve it, in short slices (see `COMPILE_NICE`).
        compile_priority();
        let _slices = crate::pace::Slices::start();
        // The lists whose layer must be compiled are read for real (one
        // found as it was has no bytes yet).
        let mut bytes: Vec<crate::rules::ListBytes> = files
            .iter()
            .map(|f| crate::rules::ListBytes {
                digest: f.digest,
                len: f.stamp.map_or(0, |(_, len, _)| len),
            })
            .collect();
        for i in crate::rules::lists_to_compile(&sources, &bytes, &old.rules) {
            if !matches!(&sources.lists[i], Ok(b) if b.is_empty()) {
                continue;
            }
            let l = &sources.config.lists[i];
            sources.lists[i] = match std::fs::read(&l.file) {
                Ok(read) => {
                    digests[i] = list_digest(&read);
                    files[i].digest = digests[i];
                    bytes[i] = crate::rules::ListBytes {
                        digest: digests[i],
                        len: read.len() as u64,
                    };
                    Ok(read)
                }
                Err(e) => Err(
                    Problem::error("io", format!("cannot read list \"{}\": {e}", l.id))
                        .in_file(&l.file.display().to_string())
                        .rule(Some(&l.id)),
                ),
            };
        }
        let now = crate::unix_now();
        // What was read again may differ from what its stamp said.
        let key = rules_key_with(&sources, &digests);
        let (set, more) = crate::rules::compile_reusing(
            &sources,
            &bytes,
            Some(&old.rules),
            crate::rules::LAYER_BYTES,
        );
        let (of, kept_layers, kept_rules) = set.shared_with(&old.rules);
        let mut problems = sources.problems;
        problems.extend(more);
        // From what changed when less changed than was kept; else the
        // whole lint costs no more and leaves nothing for later.
        let loops = match kept_rules >= set.len() - kept_rules {
            true if kept_layers > 0 => crate::rules::lint::loops_after(&set, &old.rules, now),
            _ => None,
        };
        kept = match kept_layers {
            0 => Kept::Nothing,
            k => Kept::Layers {
                kept: k,
                of,
                rules: kept_rules,
            },
        };
        later = loops.is_some();
        problems.extend(loops.unwrap_or_else(|| set.lint(now)));
        problems.extend(tls_problems);
        let loaded = crate::load::Loaded {
            config: sources.config,
            rules_key: key,
            list_files: files,
            rules: Some(set),
            tls,
            problems,
        };
        let errors: Vec<Problem> = loaded.errors().cloned().collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        for w in loaded.warnings() {
            log::warn!("{w}");
        }
        Snapshot::from_loaded(loaded)
    };
    let mut snap = snap.map_err(|e| vec![Problem::error("io", e)])?;
    if let (Some(new), Some(old)) = (snap.tls.as_mut().and_then(Arc::get_mut), &old.tls) {
        new.keep_acceptor_of(old);
    }
    let prepared = |snapshot| Prepared {
        snapshot,
        kept,
        lint_later: later,
    };
    let unchecked = snap.keep_health_of(old);
    let upstream = snap
        .routing
        .upstream
        .as_ref()
        .filter(|_| snap.routing.upstream_interval.is_some());
    if upstream.is_none() && unchecked.is_empty() {
        return Ok(prepared(snap));
    }
    // A new upstream is checked once before it serves, so a dead backend
    // gets no request meanwhile; so are targets new to a checked pool.
    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        rt.block_on(async {
            if let Some(u) = upstream {
                u.run_health_check().await;
            }
            for (pool, i) in unchecked {
                let Some(hc) = &pool.health_check else {
                    continue;
                };
                let t = &pool.targets[i];
                t.set_healthy(probe(&t.base, &hc.kind, probe_timeout(hc.interval)).await);
            }
        });
    }
    Ok(prepared(snap))
}

/// The nice value a reload compiles at. At nice 19 (the lowest priority) a
/// core kept busy by requests starved a 1M-row compile for minutes; at 0 it
/// takes half the core from the requests while it runs. Nice 2 gives it
/// about 40 % of a saturated core (CFS weights 655 against 1024), and its
/// loops give the CPU back every 250 µs (`crate::pace`), so requests get it
/// between short runs rather than after whole slices (docs/benchmarks.md,
/// "Reload"). Starting
/// at nice 19 and raising the priority when starved was tried: it needs
/// `CAP_SYS_NICE`, and the 100 ms it took to see the starvation was most of
/// the budget of a one-rule reload under load.
const COMPILE_NICE: i32 = 2;

fn compile_priority() {
    set_nice(COMPILE_NICE);
}

/// Sets the calling thread's nice value.
fn set_nice(nice: i32) {
    // SAFETY: gettid and setpriority take no pointers; setpriority on a
    // thread id changes only that thread on Linux.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice);
    }
}

/// Gives the calling thread the lowest CPU priority (nice 19): for work
/// nothing waits for, such as freeing the previous rules.
fn lower_priority() {
    set_nice(19);
}

/// Counts the rule sets put in force by reloads: a lint of a set no longer
/// in force stops.
static IN_FORCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The chain lint of rules put in force by a reload that kept part of the
/// running set (their loops were looked for before): on a thread of its
/// own, at the compile's priority. Its warnings are logged, and what it
/// records is what the next reload's lint starts from.
/// A lint still running when the next reload puts other rules in force is
/// given up: that reload's loops are found from the last lint that ran.
fn lint_later(rules: Arc<crate::rules::RuleSet>, why: String) {
    use std::sync::atomic::Ordering;
    let me = IN_FORCE.load(Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name("pingora-redirect lint".into())
        .spawn(move || {
            compile_priority();
            let _slices = crate::pace::Slices::start();
            let started = std::time::Instant::now();
            let stop = || IN_FORCE.load(Ordering::SeqCst) != me;
            let Some(problems) = crate::rules::lint::lint_unless(&rules, crate::unix_now(), &stop)
            else {
                return;
            };
            for p in problems
                .iter()
                .filter(|p| p.code != "expired" && p.code != "permanent_with_expiry")
            {
                if p.is_error() {
                    log::error!("{p}");
                } else {
                    log::warn!("{p}");
                }
            }
            log::info!(
                "reload ({why}): chains of the {} rules in force linted in {} ms",
                rules.len(),
                started.elapsed().as_millis()
            );
        });
    if let Err(e) = spawned {
        log::warn!("cannot start a thread to lint the new rules: {e}");
    }
}

/// Frees the previous snapshot on a thread of its own once the last request
/// that uses it is done, so no request pays for freeing a million rules.
fn retire(old: Arc<Snapshot>) {
    let spawned = std::thread::Builder::new()
        .name("pingora-redirect retire".into())
        .spawn(move || {
            lower_priority();
            let end = std::time::Instant::now() + Duration::from_secs(60);
            while Arc::strong_count(&old) > 1 && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
            drop(old);
        });
    if let Err(e) = spawned {
        log::warn!("cannot start a thread to free the previous rules: {e}");
    }
}

impl Reloader {
    /// `[tls] listen` is the process's until a restart: a reload that
    /// changes it is told so, `redirect_http` keeps pointing at the port
    /// that is listening (and is off when none is), and HTTPS listeners
    /// whose `[tls]` was removed refuse handshakes, which is said once.
    fn keep_tls_listeners(&self, p: &mut Snapshot, why: &str) {
        if tls_listen(&p.config) == self.started_tls {
            return;
        }
        log::warn!(
            "reload ({why}): [tls] listen changed; that needs a restart or a graceful upgrade and is ignored until then"
        );
        match (p.tls.as_mut().and_then(Arc::get_mut), self.started_tls.first()) {
            (Some(tls), Some(first)) => tls.port = first.port(),
            (Some(tls), None) => {
                if tls.redirect_http {
                    log::warn!(
                        "reload ({why}): no HTTPS listener is open, so [tls] redirect_http stays off until a restart"
                    );
                }
                tls.redirect_http = false;
            }
            (None, Some(_)) => log::warn!(
                "reload ({why}): [tls] is gone; the HTTPS listeners refuse every handshake until a restart"
            ),
            (None, None) => {}
        }
    }

    /// Reloads now; returns whether the new configuration is in force.
    pub async fn reload(&self, why: &str) -> bool {
        let started = std::time::Instant::now();
        let path = self.path.clone();
        let old = self.shared.load_full();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("pingora-redirect reload".into())
            .spawn(move || {
                let _ = tx.send(prepare(&path, &old));
            });
        let result = match spawned {
            Ok(_) => rx
                .await
                .unwrap_or_else(|_| Err(vec![Problem::error("io", "the reload thread stopped")])),
            Err(e) => Err(vec![Problem::error(
                "io",
                format!("cannot start the reload thread: {e}"),
            )]),
        };
        let now = crate::unix_now();
        match result {
            Ok(Prepared {
                snapshot: mut p,
                kept,
                lint_later: later,
            }) => {
                self.keep_tls_listeners(&mut p, why);
                let restart = needs_restart(&self.started, &p.config.server);
                if !restart.is_empty() {
                    log::warn!(
                        "reload ({why}): [server] {} changed; that needs a restart or a graceful upgrade and is ignored until then",
                        restart.join(", ")
                    );
                }
                crate::access_log::access_log().apply(&p.config.log);
                let counts = p.rules.counts();
                let n = p.rules.len();
                let rules_now = p.rules.clone();
                retire(self.shared.swap(Arc::new(p)));
                if kept != Kept::All {
                    IN_FORCE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                let took = started.elapsed();
                let rules = kept.label();
                metrics::set_rule_counts(counts);
                metrics::set_certificate_expiry(self.shared.load().tls.as_deref());
                metrics::record_reload(true, now);
                metrics::record_reload_duration(rules, took);
                let what = match kept {
                    Kept::All => format!("{n} rules kept"),
                    Kept::Layers { kept, of, rules } => format!(
                        "{n} rules, {rules} of them kept ({kept} of {of} parts kept, the others compiled)"
                    ),
                    Kept::Nothing => format!("{n} rules compiled"),
                };
                log::info!(
                    "reload ({why}): {} loaded, {what}, in force after {} ms",
                    self.path.display(),
                    took.as_millis()
                );
                if later {
                    lint_later(rules_now, why.to_string());
                }
                true
            }
            Err(problems) => {
                metrics::record_reload(false, now);
                metrics::record_reload_duration("compiled", started.elapsed());
                log::error!(
                    "reload ({why}) failed: {} does not load; the running configuration stays",
                    self.path.display()
                );
                for p in problems {
                    log::error!("{p}");
                }
                false
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("cannot listen for SIGHUP: {e}; reload by SIGHUP is off");
                None
            }
        };
        let mut usr1 = match signal(SignalKind::user_defined1()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("cannot listen for SIGUSR1: {e}; the access log is not reopened on it");
                None
            }
        };
        let stamps = |files: &[PathBuf]| -> Vec<Stamp> { files.iter().map(|f| stamp(f)).collect() };
        let mut files = watched_files(&self.shared.load().config);
        let mut seen = stamps(&files);
        // A change is acted on once the files have stopped changing for one tick.
        let mut pending: Option<Vec<Stamp>> = None;
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hup_recv = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            let usr1_recv = async {
                match usr1.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            // The files' state before a reload reads them: a change made while
            // it runs is then still a change afterwards.
            let mut before: Option<Vec<Stamp>> = None;
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = usr1_recv => {
                    crate::access_log::access_log().reopen();
                }
                _ = hup_recv => {
                    before = Some(stamps(&files));
                    self.reload("SIGHUP").await;
                }
                _ = tick.tick() => {
                    let watch = self.shared.load().config.server.watch;
                    if watch {
                        let now = stamps(&files);
                        match &pending {
                            Some(p) if *p == now => {
                                pending = None;
                                before = Some(now);
                                self.reload("file change").await;
                            }
                            _ if now != seen => pending = Some(now),
                            _ => pending = None,
                        }
                    }
                }
            }
            if let Some(before) = before {
                // Watch what the configuration in force names; a file watched
                // before keeps the state it had when the reload read it.
                let new_files = watched_files(&self.shared.load().config);
                seen = new_files
                    .iter()
                    .map(|f| match files.iter().position(|o| o == f) {
                        Some(i) => before[i],
                        None => stamp(f),
                    })
                    .collect();
                files = new_files;
                pending = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_thread_and_admin_changes_need_a_restart() {
        let old = ServerConfig::default();
        let mut new = old.clone();
        assert!(needs_restart(&old, &new).is_empty());
        new.listen = vec!["127.0.0.1:1".parse().unwrap()];
        new.threads = old.threads + 1;
        new.admin = "127.0.0.1:2".parse().unwrap();
        new.watch = !old.watch;
        new.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            needs_restart(&old, &new),
            vec!["listen", "threads", "admin"]
        );
    }

    #[test]
    fn a_rename_over_a_file_changes_its_stamp() {
        let dir = std::env::temp_dir().join(format!("pr-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "a = 1\n").unwrap();
        let before = stamp(&file);
        let tmp = dir.join("c.toml.tmp");
        std::fs::write(&tmp, "a = 2\n").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        assert_ne!(
            stamp(&file),
            before,
            "the inode of the renamed file differs"
        );
        assert_eq!(stamp(&dir.join("missing")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
