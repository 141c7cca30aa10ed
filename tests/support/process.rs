//! The `serve` processes a test started, found under /proc, and signals
//! sent to them once they catch them.

use super::fixtures::*;
use super::proxy::Proxy;
use std::path::Path;
use std::process::{Command, Stdio};

pub const SIGHUP: u32 = 1;
pub const SIGQUIT: u32 = 3;
pub const SIGUSR1: u32 = 10;

/// The state letter (`R`, `S`, `Z`, …) and the parent pid of a process,
/// from `/proc/PID/stat`; `None` when the process is gone.
pub fn proc_state(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = after.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` has exited (gone, or a zombie waiting for its parent).
pub fn has_exited(pid: u32) -> bool {
    !matches!(proc_state(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

/// The pid of the live `serve` child of this test process whose command line
/// names `config` (with or without `--upgrade`).
pub fn find_serve(config: &Path, upgrade: bool) -> Option<u32> {
    let me = std::process::id();
    let want = config.display().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let (state, ppid) = proc_state(pid)?;
        if ppid != me || state == 'Z' {
            return None;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let matches = args.iter().any(|a| a == "serve")
            && args.contains(&want)
            && args.iter().any(|a| a == "--upgrade") == upgrade;
        matches.then_some(pid)
    })
}

/// The pid of the process `Proxy::start` started.
pub fn proxy_pid(proxy: &Proxy) -> u32 {
    poll_until(START_DEADLINE, || find_serve(&proxy.config_path, false))
        .expect("the serve process under /proc")
}

/// Whether `pid` has a handler installed for signal `sig` (`SigCgt`).
pub fn catches(pid: u32, sig: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
}

/// Sends signal `name` (`HUP`, `QUIT`) to `pid` once it catches it.
pub fn send_signal(pid: u32, sig: u32, name: &str) {
    assert!(
        poll_until(START_DEADLINE, || catches(pid, sig).then_some(())).is_some(),
        "process {pid} never installed a SIG{name} handler"
    );
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}: {status}");
}
