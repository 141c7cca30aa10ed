//! Short slices for long work that shares a core with requests.
//!
//! A reload compiles on a thread of its own. When every core is busy with
//! requests, the scheduler gives that thread its share in slices of several
//! milliseconds, and every request that arrives meanwhile waits for the
//! slice to end: the requests' p99 rises by the length of a slice. The
//! compile's loops call [`point`]; on a thread where [`Slices`] is in
//! force, a point reached more than [`SLICE`] after the last yield gives
//! the CPU back (`sched_yield`), so that requests get it between short
//! runs rather than after whole slices. Elsewhere (`check`, tests, the request path) a point is one
//! thread-local read.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The longest run between two yields.
pub const SLICE: Duration = Duration::from_micros(250);

/// Points between two looks at the clock.
const EVERY: u32 = 64;

thread_local! {
    /// When the thread last yielded, and the points since the last look.
    static LAST: Cell<Option<(Instant, u32)>> = const { Cell::new(None) };
}

/// A place in a long loop where the thread may give the CPU back.
#[inline]
pub fn point() {
    LAST.with(|l| {
        if let Some((at, n)) = l.get() {
            if n + 1 < EVERY {
                l.set(Some((at, n + 1)));
                return;
            }
            if at.elapsed() < SLICE {
                l.set(Some((at, 0)));
                return;
            }
            std::thread::yield_now();
            l.set(Some((Instant::now(), 0)));
        }
    });
}

/// Short slices on the calling thread until dropped.
pub struct Slices(());

impl Slices {
    pub fn start() -> Slices {
        LAST.with(|l| l.set(Some((Instant::now(), 0))));
        Slices(())
    }
}

impl Drop for Slices {
    fn drop(&mut self) {
        LAST.with(|l| l.set(None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_count_only_while_slices_are_in_force() {
        point();
        assert_eq!(LAST.with(Cell::get), None);
        {
            let _s = Slices::start();
            for _ in 0..EVERY - 1 {
                point();
            }
            assert_eq!(LAST.with(Cell::get).map(|(_, n)| n), Some(EVERY - 1));
        }
        assert_eq!(LAST.with(Cell::get), None);
    }
}
