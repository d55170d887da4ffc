//! [`Release`]: gives back the pages a reading stream has consumed, so that
//! its memory (resident pages, page tables) is bounded by its window, not by
//! the length of the file.
//!
//! ```text
//!   region  |=====released=====|...consumed...|====resident====|
//!                              ^ done         ^ cursor
//!   every step of consumed pages: MADV_DONTNEED on them (the page cache
//!   keeps them), unless a zero-copy Bytes of the region is alive; with
//!   `drop_behind`, POSIX_FADV_DONTNEED too; on the pager's reclaim
//!   thread
//! ```
//!
//! A step is a quarter of the stream's share of the read-ahead budget, at
//! least [`RELEASE_MIN_STEP`] and at most `TEARDOWN_STEP`: so a thousand
//! streams keep at most a quarter share behind each cursor beside a share
//! ahead, and a lone stream releases in large steps, whose TLB flushes cost
//! nothing measurable.
//!
//! The release runs on the pager's reclaim thread ([`Pager::reclaim`]),
//! which never waits behind the jobs: `madvise` waits for the process's
//! memory-map lock and flushes the TLBs of every CPU the process runs on,
//! and on an async worker beside many busy pager threads it was where the
//! worker was preempted for tens of milliseconds.
//!
//! `MADV_DONTNEED` only unmaps pages of a shared mapping (their contents
//! stay in the file or shared memory); copy-on-write regions are never
//! released, since that would throw away their private copies. A live
//! `Bytes` (or `fill_buf` slice) keeps its whole mapped window unreleased:
//! memory behind a loan is never touched, whatever the kernel would make of
//! it. The stream checks for loans before it hands the release over, and
//! the release itself bars new loans while it runs (`Region::release`),
//! and gives up if a loan was made in between (the next chunk, say, lent
//! before the reclaim thread came to it): the next release behind the
//! cursor then starts from there again. (A window the cursor has left is
//! unmapped altogether once nothing holds it: see [`Windows`].)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::paging::pacing::{RELEASE_MIN_STEP, RELEASE_STEPS_PER_SHARE, TEARDOWN_STEP};
use crate::stream::prefetch::Prefetcher;
use crate::stream::windows::Windows;
use crate::Pager;

/// The part of a stream's region behind its cursor that it gave back.
#[derive(Debug)]
pub(crate) struct Release {
    /// Everything below this was released (or never read), but for what
    /// a release gave up on (`refused`).
    done: u64,
    /// The lowest start of a range whose release gave up because a loan was
    /// made after it was handed over ([`NONE_REFUSED`] if none): written
    /// by the reclaim thread, taken back into `done` by the next `behind`.
    refused: Arc<AtomicU64>,
    /// Also drop released pages from the page cache.
    drop_cached: bool,
}

/// No release gave up.
const NONE_REFUSED: u64 = u64::MAX;

impl Release {
    pub(crate) fn new(drop_cached: bool) -> Self {
        Self {
            done: 0,
            refused: Arc::new(AtomicU64::new(NONE_REFUSED)),
            drop_cached,
        }
    }

    /// Releases what lies behind `pos` in whole steps, on the pager's
    /// reclaim thread, if no loan is alive, and tells the prefetcher those
    /// pages are no longer mapped.
    pub(crate) fn behind(&mut self, windows: &Arc<Windows>, pos: u64, prefetch: &mut Prefetcher) {
        let refused = self.refused.swap(NONE_REFUSED, Ordering::Relaxed);
        self.done = self.done.min(refused);
        let pager = Pager::current();
        let share = pager.read_ahead().share() / RELEASE_STEPS_PER_SHARE;
        let step = share.clamp(RELEASE_MIN_STEP, TEARDOWN_STEP);
        if pos < self.done.saturating_add(step) || !windows.may_release(self.done..pos) {
            return;
        }
        let range = self.done..pos;
        prefetch.forget(range.clone());
        self.done = pos;
        let (windows, drop_cached) = (Arc::clone(windows), self.drop_cached);
        let refused = Arc::clone(&self.refused);
        // A pager that cannot take the task drops it: pages left mapped
        // cost memory, not data.
        let _ = pager.reclaim(move || match windows.release(range.clone()) {
            Ok(true) if drop_cached => {
                let _ = windows.drop_cached(range);
            }
            Ok(true) | Err(_) => {}
            Ok(false) => {
                refused.fetch_min(range.start, Ordering::Relaxed);
            }
        });
    }

    /// After a seek to `pos`: pages from there on may be mapped again.
    pub(crate) fn seek(&mut self, pos: u64) {
        self.done = self.done.min(pos);
    }
}
