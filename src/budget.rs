//! [`Budget`]: when a stream that is always ready lets the other tasks of its
//! thread run.
//!
//! tokio's cooperative budget counts polls, not time: a reader whose bytes
//! are always ready (pages in memory, a full pipe ring) would run for 128
//! polls, many milliseconds of copying, before its task yields. So each
//! stream also keeps a time slice: once it has been polled back to back for
//! [`SLICE`], the next poll returns `Pending` and the task is woken again
//! only after the executor has run its timers and I/O driver, as tokio does
//! when its own budget runs out. (A plain `wake_by_ref` would put the task
//! straight back in the run queue, where a spawned reader of a hot file on a
//! `current_thread` runtime held a 1 ms timer back by 30 ms: the 61 polls
//! tokio makes before it looks at its driver.)
//!
//! ```text
//!   polls:  |p|p|p|p|p|p|p|p| yield |p|p|p|p|p|p|p|p| yield ...
//!           <------ SLICE ----->      <------ SLICE ----->
//!   a gap of more than GAP between the starts of two polls (the task was
//!   waiting on something else) starts a new slice
//! ```

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::task::coop;

use crate::paging::pacing::{GAP, SLICE};

/// The time slice of one stream.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    slice_start: Option<Instant>,
    last_poll: Option<Instant>,
}

impl Budget {
    /// `Pending` (with the task woken once the executor has looked at its
    /// timers and I/O) when the stream has used up its slice, or tokio's budget for the task is spent. Otherwise the
    /// guard of tokio's budget: call `made_progress` on it after the poll
    /// did some work.
    pub(crate) fn poll_proceed(&mut self, cx: &mut Context<'_>) -> Poll<coop::RestoreOnPending> {
        let now = Instant::now();
        let resumed = self
            .last_poll
            .is_none_or(|last| now.duration_since(last) > GAP);
        self.last_poll = Some(now);
        if resumed {
            self.slice_start = Some(now);
        }
        let start = *self.slice_start.get_or_insert(now);
        if now.duration_since(start) >= SLICE {
            self.slice_start = None;
            self.last_poll = None;
            yield_to_driver(cx);
            return Poll::Pending;
        }
        coop::poll_proceed(cx)
    }
}

/// Arranges for the task to be woken after the executor has polled its
/// driver, and not before.
pub(crate) fn yield_to_driver(cx: &mut Context<'_>) {
    // The first poll of `yield_now` hands the waker to the runtime's list of
    // tasks to wake after the driver (outside a runtime it wakes at once),
    // and returns `Pending`; dropping it afterwards cancels nothing.
    let pending = std::pin::pin!(tokio::task::yield_now())
        .poll(cx)
        .is_pending();
    debug_assert!(pending);
}
