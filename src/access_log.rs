//! The access log: one line per request, written off the request path.
//!
//! A request formats its line (`combined`, as nginx and Apache write it, or
//! one JSON object) straight from what it borrows (no copy of the request's
//! fields, no allocation once the buffers have grown) and appends it to the
//! buffer of its worker thread's shard: an uncontended lock, a copy. A
//! writer thread takes every shard's buffer every 10 ms (swapping in an
//! empty one) and writes them out. The request never waits for a disk and
//! never makes a system call for its line.
//!
//! A shard holds at most [`SHARD_LIMIT`] bytes; past that (a writer that
//! cannot keep up: a slow or stuck disk, a FIFO nobody reads) the line is
//! dropped and counted (`pingora_redirect_access_log_dropped_total`). Write
//! errors (a full disk) are logged at most once a minute. SIGUSR1 reopens
//! the file (for logrotate); a reload with a changed `[log]` starts a new
//! writer and lets the old one write what it holds; at exit,
//! [`AccessLog::finish`] waits for the writers.
//!
//! Request bytes never reach the file raw: in `combined`, `"`, `\` and every
//! byte below 0x20 or from 0x7f up are written `\xNN` (as nginx does); in
//! JSON, strings are escaped and bytes that are not UTF-8 become `\u00NN`.
//! So no client can forge or split a line.
//!
//! The module is longer than most (about 680 lines before its tests) and
//! stays one: the two formats, the shards and the writer are one pipeline
//! from a borrowed entry to a file, with no piece used elsewhere.

use crate::config::{AccessTarget, LogConfig, LogFormat};
use crate::metrics::metrics;
use crate::request::Scheme;
use arc_swap::ArcSwapOption;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Shards of buffered lines; a worker thread always uses the same one.
const SHARDS: usize = 16;
/// Bytes a shard holds for the writer; a line past this is dropped.
pub const SHARD_LIMIT: usize = 4 << 20;
/// How long the writer sleeps between two rounds over the shards: about
/// the longest a line waits before it is written.
const TICK: Duration = Duration::from_millis(10);

/// What one line says about one request, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub client: Option<IpAddr>,
    /// `None` when no request line was read (a head that never completed).
    pub method: Option<&'a str>,
    pub scheme: Scheme,
    pub host: Option<&'a [u8]>,
    /// The request target as received: path and query.
    pub target: &'a [u8],
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub protocol: &'static str,
    pub status: u16,
    /// Body bytes sent.
    pub bytes: usize,
    pub duration: Duration,
    pub outcome: &'static str,
    pub rule: Option<&'a str>,
    pub location: Option<&'a str>,
    pub backend: Option<&'a str>,
    pub upstream_status: Option<u16>,
    pub user_agent: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
}

impl Entry<'static> {
    /// An answer written before any request line was read (Pingora's 400
    /// for a malformed head, the 408 of a head that stopped, the 503 of a
    /// full listener): no method, target or headers to tell.
    pub fn without_request(
        client: Option<IpAddr>,
        protocol: &'static str,
        status: u16,
        bytes: usize,
        duration: Duration,
        outcome: &'static str,
    ) -> Entry<'static> {
        Entry {
            client,
            method: None,
            scheme: Scheme::Http,
            host: None,
            target: b"",
            protocol,
            status,
            bytes,
            duration,
            outcome,
            rule: None,
            location: None,
            backend: None,
            upstream_status: None,
            user_agent: None,
            referer: None,
        }
    }
}

/// Lines waiting for the writer.
struct Shards {
    shards: [Mutex<String>; SHARDS],
}

/// One `[log]` in force: its shards and, until the first line, its writer.
///
/// The writer thread is started by the first line, not when `[log]` is
/// applied: `serve --daemon` forks after the configuration is applied, and
/// a thread started before a fork does not exist in the child.
struct Sink {
    config: LogConfig,
    shards: Arc<Shards>,
    reopen: Arc<AtomicBool>,
    /// The writer, until it runs.
    idle: Mutex<Option<Writer>>,
    running: AtomicBool,
}

impl Sink {
    #[cold]
    fn start(self: &Arc<Sink>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut writer) = idle.take() else {
            return;
        };
        writer.sink = Arc::downgrade(self);
        let (done_tx, done_rx) = sync_channel::<()>(0);
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                writer.run();
                drop(done_tx);
            });
        match spawned {
            Ok(_) => access_log()
                .writers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(done_rx),
            Err(e) => log::error!("cannot start the access-log writer: {e}; lines are dropped"),
        }
        self.running.store(true, Ordering::Release);
    }
}

/// The access log of the process: off, or shards and a writer thread.
#[derive(Default)]
pub struct AccessLog {
    sink: ArcSwapOption<Sink>,
    /// Whether `sink` holds one: read by every request, so a plain flag
    /// rather than a load of `sink`.
    on: AtomicBool,
    /// One receiver per writer thread started; it disconnects when the
    /// thread has written everything and ended.
    writers: Mutex<Vec<Receiver<()>>>,
}

/// The shard of this thread.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

thread_local! {
    /// This thread's line being formatted, and its clock.
    static SCRATCH: RefCell<(String, Stamp)> = RefCell::new((String::with_capacity(512), Stamp::default()));
}

impl AccessLog {
    /// Whether lines are written (entries are not even built otherwise).
    #[inline]
    pub fn enabled(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Formats and buffers one line; drops and counts it when the writer is
    /// behind.
    pub fn log(&self, entry: &Entry<'_>) {
        let sink = self.sink.load();
        let Some(sink) = sink.as_ref() else {
            return;
        };
        if !sink.running.load(Ordering::Acquire) {
            sink.start();
        }
        let format = sink.config.format;
        let now = SystemTime::now();
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let (line, stamp) = &mut *scratch;
            line.clear();
            format_entry(line, stamp, format, now, entry);
            let mut shard = sink.shards.shards[shard_index()]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if shard.len() + line.len() > SHARD_LIMIT {
                drop(shard);
                metrics().access_log_dropped.inc();
            } else {
                shard.push_str(line);
            }
        });
    }

    /// Applies `[log]` (at start and on every reload): a changed target or
    /// format gets a new writer; the old one writes what it has and ends.
    pub fn apply(&self, config: &LogConfig) {
        let current = self.sink.load();
        if current.as_ref().map(|s| &s.config) == Some(config) {
            return;
        }
        if config.access == AccessTarget::Off {
            self.sink.store(None);
            self.on.store(false, Ordering::Relaxed);
            return;
        }
        let shards = Arc::new(Shards {
            shards: std::array::from_fn(|_| Mutex::new(String::new())),
        });
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            shards: shards.clone(),
            sink: Weak::new(),
            target: config.access.clone(),
            reopen: reopen.clone(),
        };
        self.on.store(true, Ordering::Relaxed);
        self.sink.store(Some(Arc::new(Sink {
            config: config.clone(),
            shards,
            reopen,
            idle: Mutex::new(Some(writer)),
            running: AtomicBool::new(false),
        })));
    }

    /// Reopens the file (SIGUSR1, after logrotate moved it).
    pub fn reopen(&self) {
        if let Some(s) = self.sink.load().as_ref() {
            s.reopen.store(true, Ordering::Release);
        }
    }

    /// At exit, once no request runs: stops taking lines and waits up to
    /// `limit` for the writers to write what they hold.
    pub fn finish(&self, limit: Duration) {
        self.sink.store(None);
        self.on.store(false, Ordering::Relaxed);
        let end = Instant::now() + limit;
        let writers = std::mem::take(&mut *self.writers.lock().unwrap_or_else(|e| e.into_inner()));
        for done in writers {
            // Disconnected (or a stray message) means the thread ended.
            let left = end.saturating_duration_since(Instant::now());
            if let Err(RecvTimeoutError::Timeout) = done.recv_timeout(left) {
                log::warn!(
                    "the access-log writer did not finish within {limit:?}; its last lines may be lost"
                );
            }
        }
    }
}

/// The process's access log.
pub fn access_log() -> &'static AccessLog {
    static LOG: std::sync::OnceLock<AccessLog> = std::sync::OnceLock::new();
    LOG.get_or_init(AccessLog::default)
}

struct Writer {
    shards: Arc<Shards>,
    /// Alive while requests can still add lines.
    sink: Weak<Sink>,
    target: AccessTarget,
    reopen: Arc<AtomicBool>,
}

enum Out {
    Stdout(std::io::Stdout),
    File(std::fs::File),
    /// The file could not be opened: lines are lost until a reopen works.
    None,
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl Writer {
    fn out(&self, last_error: &mut Option<Instant>) -> Out {
        match &self.target {
            AccessTarget::Stdout => Out::Stdout(std::io::stdout()),
            AccessTarget::File(p) => match open(p) {
                Ok(f) => Out::File(f),
                Err(e) => {
                    complain(last_error, &format!("cannot open {}: {e}", p.display()));
                    Out::None
                }
            },
            AccessTarget::Off => Out::None,
        }
    }

    fn write(&self, out: &mut Out, buf: &str, last_error: &mut Option<Instant>) {
        let written = match out {
            Out::Stdout(s) => s.lock().write_all(buf.as_bytes()).and_then(|()| s.flush()),
            Out::File(f) => f.write_all(buf.as_bytes()),
            Out::None => Ok(()),
        };
        if let Err(e) = written {
            let name = match &self.target {
                AccessTarget::File(p) => p.display().to_string(),
                _ => "standard output".into(),
            };
            complain(last_error, &format!("cannot write to {name}: {e}"));
        }
    }

    /// Every [`TICK`]: takes each shard's lines (an empty buffer of the same
    /// capacity goes back in its place) and writes them. Once the `[log]`
    /// it belongs to is replaced and no request holds it any more, a last
    /// round writes what is left and the thread ends.
    fn run(self) {
        let mut last_error: Option<Instant> = None;
        let mut out = self.out(&mut last_error);
        let mut spare = String::new();
        loop {
            // Looked at before the round: when nothing holds the sink any
            // more, nothing can add a line after this round took them.
            let last = self.sink.strong_count() == 0;
            if self.reopen.swap(false, Ordering::AcqRel) || matches!(out, Out::None) {
                out = self.out(&mut last_error);
            }
            for shard in &self.shards.shards {
                {
                    let mut lines = shard.lock().unwrap_or_else(|e| e.into_inner());
                    if lines.is_empty() {
                        continue;
                    }
                    std::mem::swap(&mut *lines, &mut spare);
                }
                self.write(&mut out, &spare, &mut last_error);
                spare.clear();
            }
            if last {
                return;
            }
            std::thread::sleep(TICK);
        }
    }
}

/// Logs a writer error, at most once a minute.
fn complain(last: &mut Option<Instant>, msg: &str) {
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
        log::error!("access log: {msg}; lines are lost until it works again");
        *last = Some(Instant::now());
    }
}

/// The time of the last line, formatted once per second.
#[derive(Default)]
struct Stamp {
    second: u64,
    /// `01/Dec/2026:15:08:42 +0000`
    combined: String,
    /// `2026-12-01T15:08:42`
    rfc3339: String,
}

impl Stamp {
    fn at(&mut self, now: SystemTime) -> u32 {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        if since.as_secs() != self.second || self.combined.is_empty() {
            self.second = since.as_secs();
            let t = time::OffsetDateTime::from(now);
            let month = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ][usize::from(u8::from(t.month())) - 1];
            self.combined.clear();
            let _ = write!(
                self.combined,
                "{:02}/{month}/{}:{:02}:{:02}:{:02} +0000",
                t.day(),
                t.year(),
                t.hour(),
                t.minute(),
                t.second()
            );
            self.rfc3339.clear();
            let _ = write!(
                self.rfc3339,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
        }
        since.subsec_nanos()
    }
}

fn format_entry(
    buf: &mut String,
    stamp: &mut Stamp,
    format: LogFormat,
    now: SystemTime,
    e: &Entry<'_>,
) {
    match format {
        LogFormat::Combined => combined(buf, stamp, now, e),
        LogFormat::Json => json(buf, stamp, now, e),
    }
}

/// Appends a number (the hot path formats without `core::fmt`).
fn push_num(buf: &mut String, n: impl itoa::Integer) {
    buf.push_str(itoa::Buffer::new().format(n));
}

/// Appends `n` with leading zeros up to `width` digits.
fn push_padded(buf: &mut String, n: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    for _ in digits.len()..width {
        buf.push('0');
    }
    buf.push_str(digits);
}

/// Appends `seconds.fraction` of a duration with `places` (3 or 6) decimals.
fn push_duration(buf: &mut String, d: Duration, places: u32) {
    let unit = 10u128.pow(places);
    let scaled = d.as_nanos() / 10u128.pow(9 - places);
    push_num(buf, u64::try_from(scaled / unit).unwrap_or(u64::MAX));
    buf.push('.');
    push_padded(buf, (scaled % unit) as u64, places as usize);
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex_byte(buf: &mut String, prefix: &str, digits: &[u8; 16], b: u8) {
    buf.push_str(prefix);
    buf.push(char::from(digits[usize::from(b >> 4)]));
    buf.push(char::from(digits[usize::from(b & 15)]));
}

fn push_addr(buf: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            push_num(buf, a);
            buf.push('.');
            push_num(buf, b);
            buf.push('.');
            push_num(buf, c);
            buf.push('.');
            push_num(buf, d);
        }
        IpAddr::V6(v6) => {
            let _ = write!(buf, "{v6}");
        }
    }
}

fn push_ip(buf: &mut String, ip: Option<IpAddr>) {
    match ip {
        Some(c) => push_addr(buf, c),
        None => buf.push('-'),
    }
}

/// Appends request bytes for a quoted field of the combined format: `"`,
/// `\`, control bytes and bytes from 0x7f up as `\xNN`.
fn push_escaped(buf: &mut String, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let safe = rest
            .iter()
            .position(|&b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
            .unwrap_or(rest.len());
        // Bytes 0x20..0x7f are ASCII: valid UTF-8 as they are.
        buf.push_str(std::str::from_utf8(&rest[..safe]).unwrap_or_default());
        if let Some(&b) = rest.get(safe) {
            push_hex_byte(buf, "\\x", UPPER_HEX, b);
            rest = &rest[safe + 1..];
        } else {
            rest = &[];
        }
    }
}

fn push_or_dash(buf: &mut String, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) if !b.is_empty() => push_escaped(buf, b),
        _ => buf.push('-'),
    }
}

/// An unquoted field (rule id, backend): as [`push_escaped`], and a space as
/// `\x20` so that the field stays one field.
fn push_token(buf: &mut String, token: Option<&str>) {
    match token {
        Some(t) if !t.is_empty() => {
            for part in t.as_bytes().split_inclusive(|&b| b == b' ') {
                match part.split_last() {
                    Some((b' ', head)) => {
                        push_escaped(buf, head);
                        buf.push_str("\\x20");
                    }
                    _ => push_escaped(buf, part),
                }
            }
        }
        _ => buf.push('-'),
    }
}

/// `client - - [time] "request" status bytes "referer" "user agent"
/// duration outcome rule backend`
fn combined(buf: &mut String, stamp: &mut Stamp, now: SystemTime, e: &Entry<'_>) {
    push_ip(buf, e.client);
    stamp.at(now);
    buf.push_str(" - - [");
    buf.push_str(&stamp.combined);
    buf.push_str("] \"");
    match e.method {
        Some(m) => {
            push_escaped(buf, m.as_bytes());
            buf.push(' ');
            push_escaped(buf, e.target);
            buf.push(' ');
            buf.push_str(e.protocol);
        }
        None => buf.push('-'),
    }
    buf.push_str("\" ");
    push_num(buf, e.status);
    buf.push(' ');
    push_num(buf, e.bytes);
    buf.push_str(" \"");
    push_or_dash(buf, e.referer);
    buf.push_str("\" \"");
    push_or_dash(buf, e.user_agent);
    buf.push_str("\" ");
    push_duration(buf, e.duration, 6);
    buf.push(' ');
    buf.push_str(e.outcome);
    buf.push(' ');
    push_token(buf, e.rule);
    buf.push(' ');
    push_token(buf, e.backend);
    buf.push('\n');
}

/// A JSON string of request bytes: escapes as JSON does, and a byte that is
/// not part of valid UTF-8 as `\u00NN`.
fn json_bytes(buf: &mut String, bytes: &[u8]) {
    buf.push('"');
    let mut rest = bytes;
    loop {
        let plain = rest
            .iter()
            .position(|&b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
            .unwrap_or(rest.len());
        // Bytes 0x20..0x7f are ASCII: valid UTF-8 as they are.
        buf.push_str(std::str::from_utf8(&rest[..plain]).unwrap_or_default());
        rest = &rest[plain..];
        let Some(&b) = rest.first() else {
            break;
        };
        if b < 0x80 {
            match b {
                b'"' => buf.push_str("\\\""),
                b'\\' => buf.push_str("\\\\"),
                b'\n' => buf.push_str("\\n"),
                b'\r' => buf.push_str("\\r"),
                b'\t' => buf.push_str("\\t"),
                _ => push_hex_byte(buf, "\\u00", LOWER_HEX, b),
            }
            rest = &rest[1..];
            continue;
        }
        // Not ASCII: one UTF-8 character as it is, or the invalid bytes
        // before the next valid character as `\u00NN` each.
        let Some(chunk) = rest.utf8_chunks().next() else {
            break;
        };
        if let Some(c) = chunk.valid().chars().next() {
            buf.push(c);
            rest = &rest[c.len_utf8()..];
        } else {
            for &b in chunk.invalid() {
                push_hex_byte(buf, "\\u00", LOWER_HEX, b);
            }
            rest = &rest[chunk.invalid().len()..];
        }
    }
    buf.push('"');
}

fn json_opt(buf: &mut String, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => json_bytes(buf, b),
        None => buf.push_str("null"),
    }
}

fn json(buf: &mut String, stamp: &mut Stamp, now: SystemTime, e: &Entry<'_>) {
    let nanos = stamp.at(now);
    buf.push_str("{\"time\":\"");
    buf.push_str(&stamp.rfc3339);
    buf.push('.');
    push_padded(buf, u64::from(nanos), 9);
    buf.push_str("Z\",\"client\":");
    match e.client {
        Some(c) => {
            buf.push('"');
            push_addr(buf, c);
            buf.push('"');
        }
        None => buf.push_str("null"),
    }
    buf.push_str(",\"method\":");
    json_opt(buf, e.method.map(str::as_bytes));
    buf.push_str(",\"scheme\":\"");
    buf.push_str(e.scheme.as_str());
    buf.push_str("\",\"host\":");
    json_opt(buf, e.host);
    buf.push_str(",\"path\":");
    json_opt(buf, e.method.map(|_| e.target));
    buf.push_str(",\"protocol\":");
    match e.method {
        Some(_) => {
            buf.push('"');
            buf.push_str(e.protocol);
            buf.push('"');
        }
        None => buf.push_str("null"),
    }
    buf.push_str(",\"status\":");
    push_num(buf, e.status);
    buf.push_str(",\"bytes\":");
    push_num(buf, e.bytes);
    buf.push_str(",\"duration_ms\":");
    // Milliseconds with three decimals.
    push_duration(buf, e.duration.saturating_mul(1000), 3);
    buf.push_str(",\"outcome\":\"");
    buf.push_str(e.outcome);
    buf.push_str("\",\"rule\":");
    json_opt(buf, e.rule.map(str::as_bytes));
    buf.push_str(",\"location\":");
    json_opt(buf, e.location.map(str::as_bytes));
    buf.push_str(",\"backend\":");
    json_opt(buf, e.backend.map(str::as_bytes));
    buf.push_str(",\"upstream_status\":");
    match e.upstream_status {
        Some(s) => push_num(buf, s),
        None => buf.push_str("null"),
    }
    buf.push_str(",\"user_agent\":");
    json_opt(buf, e.user_agent);
    buf.push_str(",\"referer\":");
    json_opt(buf, e.referer);
    buf.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Duration = Duration::from_secs(1_800_000_000);

    fn entry() -> Entry<'static> {
        Entry {
            client: Some("192.0.2.7".parse().unwrap()),
            method: Some("GET"),
            scheme: Scheme::Http,
            host: Some(b"a.example"),
            target: b"/a\"b\r\nc?q=\x00\xff",
            protocol: "HTTP/1.1",
            status: 301,
            bytes: 150,
            duration: Duration::from_micros(1250),
            outcome: "redirect",
            rule: Some("docs"),
            location: Some("https://n.example/x"),
            backend: None,
            upstream_status: None,
            user_agent: Some(b"curl \"x\"\n"),
            referer: None,
        }
    }

    #[test]
    fn combined_escapes_every_request_byte_that_could_forge_a_line() {
        let mut b = String::new();
        combined(&mut b, &mut Stamp::default(), UNIX_EPOCH + AT, &entry());
        assert_eq!(
            b,
            "192.0.2.7 - - [15/Jan/2027:08:00:00 +0000] \"GET /a\\x22b\\x0D\\x0Ac?q=\\x00\\xFF HTTP/1.1\" 301 150 \"-\" \"curl \\x22x\\x22\\x0A\" 0.001250 redirect docs -\n"
        );
    }

    #[test]
    fn json_is_one_valid_object_per_line() {
        let mut b = String::new();
        let at = UNIX_EPOCH + AT + Duration::from_nanos(5_000);
        json(&mut b, &mut Stamp::default(), at, &entry());
        assert_eq!(b.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(b.trim_end()).unwrap();
        assert_eq!(v["path"], "/a\"b\r\nc?q=\u{0}\u{ff}");
        assert_eq!(v["status"], 301);
        assert_eq!(v["duration_ms"], 1.25);
        assert_eq!(v["backend"], serde_json::Value::Null);
        assert_eq!(v["user_agent"], "curl \"x\"\n");
        assert_eq!(v["time"], "2027-01-15T08:00:00.000005000Z");
    }

    #[test]
    fn the_stamp_follows_the_clock_across_seconds() {
        let mut stamp = Stamp::default();
        let mut b = String::new();
        for (offset, want) in [(0, "08:00:00"), (999, "08:00:00"), (1_000, "08:00:01")] {
            b.clear();
            let at = UNIX_EPOCH + AT + Duration::from_millis(offset);
            combined(&mut b, &mut stamp, at, &entry());
            assert!(b.contains(&format!("2027:{want} +0000")), "{b}");
        }
    }

    #[test]
    fn a_token_keeps_to_one_field() {
        let mut b = String::new();
        push_token(&mut b, Some("list:a b\"c"));
        assert_eq!(b, "list:a\\x20b\\x22c");
    }

    #[test]
    fn numbers_and_addresses_read_as_core_fmt_writes_them() {
        for (d, six, three) in [
            (Duration::ZERO, "0.000000", "0.000"),
            (Duration::from_nanos(999), "0.000000", "0.000"),
            (Duration::from_micros(1_250), "0.001250", "1.250"),
            (
                Duration::from_secs(12) + Duration::from_nanos(3_004_999),
                "12.003004",
                "12003.004",
            ),
        ] {
            let mut b = String::new();
            push_duration(&mut b, d, 6);
            assert_eq!(b, six);
            b.clear();
            push_duration(&mut b, d.saturating_mul(1000), 3);
            assert_eq!(b, three);
        }
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.20.3",
            "::1",
            "2001:db8::5",
        ] {
            let mut b = String::new();
            push_addr(&mut b, ip.parse().unwrap());
            assert_eq!(b, ip);
        }
        let mut b = String::new();
        push_padded(&mut b, 5_000, 9);
        push_num(&mut b, u64::MAX);
        assert_eq!(b, "00000500018446744073709551615");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_make_one_json_string_that_reads_back(
            text in "\\PC{0,12}",
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..24),
            more in "[\\x00-\\x7f\u{80}-\u{10ffff}]{0,12}",
        ) {
            let bytes = [text.as_bytes(), &raw, more.as_bytes()].concat();
            let mut b = String::new();
            json_bytes(&mut b, &bytes);
            let mut want = String::new();
            for chunk in bytes.utf8_chunks() {
                want.push_str(chunk.valid());
                want.extend(chunk.invalid().iter().map(|&b| char::from(b)));
            }
            proptest::prop_assert!(!b.contains('\n'));
            let read: String = serde_json::from_str(&b).unwrap();
            proptest::prop_assert_eq!(read, want);
        }
    }
}
