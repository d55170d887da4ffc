//! [`Spin`]: a pipe end looks at the ring again for a few microseconds
//! before it sleeps on its link.
//!
//! Sleeping is dear for a short wait: the peer must make a system call to
//! send the wake-up byte, and the sleeper comes back through the kernel's
//! scheduler and tokio's reactor (together ~10 µs here, as much as a whole
//! round trip through a Unix socket). A message that comes within
//! microseconds is cheaper to catch by looking again. So an end that finds
//! the ring empty (the reader) or full (the writer) yields to the executor
//! and looks again, for at most [`SPIN`], before it sleeps:
//!
//! ```text
//!   ring empty ─> waited < SPIN? ── yes ─> yield (woken after the executor
//!                      │                   polled its timers and I/O), look again
//!                      no
//!                      └─> set the waiting flag, sleep on the link
//! ```
//!
//! Yielding, not spinning in place, keeps the thread's other tasks and
//! timers running meanwhile. An idle pipe spins once, for `SPIN`, and then
//! costs nothing.

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::budget::yield_to_driver;

/// How long an end keeps looking before it sleeps.
pub(super) const SPIN: Duration = Duration::from_micros(20);

/// The spin of one pipe end.
#[derive(Debug, Default)]
pub(super) struct Spin {
    /// When the end found the ring empty (full) and started waiting.
    since: Option<Instant>,
}

impl Spin {
    /// `Pending`, with the task woken after the executor polled its driver,
    /// while the end has waited less than [`SPIN`]; `Ready` when it should
    /// sleep. Spins again only after [`moved`](Spin::moved).
    pub(super) fn poll_spin(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        if now.duration_since(*self.since.get_or_insert(now)) < SPIN {
            yield_to_driver(cx);
            return Poll::Pending;
        }
        Poll::Ready(())
    }

    /// The ring moved: the next wait spins again.
    pub(super) fn moved(&mut self) {
        self.since = None;
    }
}
