//! A `serve --upgrade` process: the new side of a graceful upgrade, which
//! waits on `upgrade_sock` for the listening sockets of the running one.

#![allow(dead_code)]

use super::fixtures::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// A second `serve --upgrade -c CONFIG` that takes the listeners over from
/// the running one; stopped with SIGINT (then killed) on drop.
pub struct Upgraded {
    child: Option<Child>,
    stderr_path: PathBuf,
    upgrade_sock: PathBuf,
}

impl Upgraded {
    pub fn start(config: &Path, dir: &Path) -> Upgraded {
        let stderr_path = dir.join("upgraded-stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("create stderr log");
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--upgrade")
            .arg("-c")
            .arg(config)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn pingora-redirect serve --upgrade");
        Upgraded {
            child: Some(child),
            stderr_path,
            upgrade_sock: dir.join("upgrade.sock"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Whether the upgrade socket is a listening unix socket
    /// (`/proc/net/unix` flag `__SO_ACCEPTCON`).
    pub fn sock_listening(&self) -> bool {
        let want = self.upgrade_sock.display().to_string();
        std::fs::read_to_string("/proc/net/unix")
            .unwrap_or_default()
            .lines()
            .any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() >= 8 && f[3] == "00010000" && f[7] == want
            })
    }

    /// Waits until the new process listens on `upgrade_sock` for the
    /// sockets (it gives up after about 6 s, so SIGQUIT must follow soon).
    pub fn wait_waiting(&mut self) {
        let waiting = poll_until(START_DEADLINE, || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "serve --upgrade exited with {status} before it waited for the sockets\nstderr:\n{}",
                    self.stderr()
                );
            }
            self.sock_listening().then_some(())
        });
        assert!(
            waiting.is_some(),
            "serve --upgrade does not wait on {}\nstderr:\n{}",
            self.upgrade_sock.display(),
            self.stderr()
        );
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn stop(&mut self) -> Option<ExitStatus> {
        super::proxy::stop_child(self.child.take()?, "serve --upgrade")
    }
}

impl Drop for Upgraded {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- serve --upgrade stderr ----\n{}\n---- end of stderr ----",
                self.stderr()
            );
        }
    }
}
