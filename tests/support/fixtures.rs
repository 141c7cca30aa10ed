//! What every test needs around it: the binary under test, temporary
//! directories, free ports, deadlines.

#![allow(dead_code)]

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pingora-redirect");
/// Pause between two polls of a deadline loop.
pub const POLL: Duration = Duration::from_millis(25);
/// How long the proxy may take to become ready.
pub const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long the proxy may take to exit after SIGINT.
pub const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// Read and write timeout of raw connections.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response head or request head either side accepts.
pub const MAX_HEAD: usize = 64 * 1024;

/// A directory of its own under the system temp dir, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "pr-proxy-{tag}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// Writes `name` (relative to the directory) and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback port that was free a moment ago: bind `127.0.0.1:0`, read the
/// port, drop the listener. Ports are never handed out twice by one test
/// process, so concurrent tests do not collide with each other.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..64 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        drop(l);
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no fresh loopback port in 64 tries");
}

/// A string as a TOML basic string (quotes included).
pub fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Polls `f` every [`POLL`] until it returns `Some` or `deadline` passes.
pub fn poll_until<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits up to `deadline` for `child` to exit.
pub fn wait_exit(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    poll_until(deadline, || child.try_wait().ok().flatten())
}
