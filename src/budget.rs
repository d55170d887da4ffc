//! Charging tokio's cooperative budget by the byte.
//!
//! tokio's budget counts polls, not work: a reader that is always ready
//! (pages already in memory, a full pipe ring) would otherwise run for 128
//! polls before it lets the other tasks of its thread run.

use std::task::{ready, Context, Poll};

use tokio::task::coop;

/// How many bytes of copying cost one unit of tokio's cooperative budget.
/// With one unit per poll, a task reading 64 KiB at a time from hot pages
/// would run through 8 MiB (128 polls) before yielding to the other tasks of
/// its thread; charging by the byte makes it yield every 1 MiB.
const BYTES_PER_BUDGET_UNIT: usize = 8 << 10;

/// Takes one unit of the task's cooperative budget per
/// [`BYTES_PER_BUDGET_UNIT`] of `bytes` (at least one, at most 64): `Pending`
/// when the budget is spent, so the task yields. The last unit comes back if
/// the returned guard is dropped without `made_progress`.
pub(crate) fn poll_budget(cx: &mut Context<'_>, bytes: usize) -> Poll<coop::RestoreOnPending> {
    let units = (bytes / BYTES_PER_BUDGET_UNIT).clamp(1, 64);
    for _ in 1..units {
        ready!(coop::poll_proceed(cx)).made_progress();
    }
    coop::poll_proceed(cx)
}
