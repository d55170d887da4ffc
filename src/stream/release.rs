//! [`Release`]: gives back the pages a reading stream has consumed, so that
//! its memory (resident pages, page tables) is bounded by its window, not by
//! the length of the file.
//!
//! ```text
//!   region  |=====released=====|...consumed...|====resident====|
//!                              ^ done         ^ cursor
//!   every step of consumed pages: MADV_DONTNEED on them (the page cache
//!   keeps them), unless a zero-copy Bytes of the region is alive; with
//!   `drop_behind`, POSIX_FADV_DONTNEED too, on the pager
//! ```
//!
//! A step is the stream's share of the read-ahead budget, at least
//! [`RELEASE_MIN_STEP`] and at most `TEARDOWN_STEP`: so a thousand streams keep
//! about a share behind each cursor and a share ahead, and a lone stream
//! releases in large steps, whose TLB flushes cost nothing measurable.
//!
//! `MADV_DONTNEED` only unmaps pages of a shared mapping (their contents
//! stay in the file or shared memory); copy-on-write regions are never
//! released, since that would throw away their private copies. A live
//! `Bytes` keeps its whole mapped window unreleased: memory behind a loan
//! is never touched, whatever the kernel would make of it. (A window the
//! cursor has left is unmapped altogether once nothing holds it: see
//! [`Windows`].)

use std::io;
use std::sync::Arc;

use crate::paging::pacing::{RELEASE_MIN_STEP, TEARDOWN_STEP};
use crate::stream::prefetch::Prefetcher;
use crate::stream::windows::Windows;
use crate::Pager;

/// The part of a stream's region behind its cursor that it gave back.
#[derive(Debug)]
pub(crate) struct Release {
    /// Everything below this was released (or never read).
    done: u64,
    /// Also drop released pages from the page cache.
    drop_cached: bool,
}

impl Release {
    pub(crate) fn new(drop_cached: bool) -> Self {
        Self {
            done: 0,
            drop_cached,
        }
    }

    /// Releases what lies behind `pos` in whole steps, if no loan is alive,
    /// and tells the prefetcher those pages are no longer mapped.
    pub(crate) fn behind(
        &mut self,
        windows: &Arc<Windows>,
        pos: u64,
        prefetch: &mut Prefetcher,
    ) -> io::Result<()> {
        let step = Pager::current()
            .read_ahead()
            .share()
            .clamp(RELEASE_MIN_STEP, TEARDOWN_STEP);
        if pos < self.done.saturating_add(step) {
            return Ok(());
        }
        let range = self.done..pos;
        if !windows.release_unlent(range.clone())? {
            return Ok(());
        }
        prefetch.forget(range.clone());
        self.done = pos;
        if self.drop_cached {
            let windows = Arc::clone(windows);
            // Best effort: pages that stay cached cost memory, not data.
            let _ = Pager::current().submit(Arc::default(), move || {
                let _ = windows.drop_cached(range);
            });
        }
        Ok(())
    }

    /// After a seek to `pos`: pages from there on may be mapped again.
    pub(crate) fn seek(&mut self, pos: u64) {
        self.done = self.done.min(pos);
    }
}
