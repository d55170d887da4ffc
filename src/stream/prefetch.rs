//! The background prefetcher of a stream view: it makes the pages ahead of
//! the cursor resident on the pager's threads, so that a poll on an async
//! worker never waits on the disk.
//!
//! ```text
//!   region  |..........|=========resident=========|~~~job~~~|...........|
//!                      ^ pos                       ^ end     ^ end + window
//!   poll: bytes below `end` are safe to touch now; at `end` the poll parks
//!   its waker and returns Pending until the job (MADV_POPULATE_READ of the
//!   next window, off the workers) reports its next step done.
//! ```
//!
//! A job maps the part of the stream it works on first, if the stream has
//! not mapped it yet ([`Windows`]): so the stream's mappings are made here,
//! off the async workers, and a read-ahead window never crosses the end of
//! a mapped window.
//!
//! One job runs at a time and covers one window, in steps of
//! [`BLOCKING_STEP`]; it reports each step as it is done, so a reader that
//! caught up with it goes on a step behind it, not a window behind (the
//! first bytes of a cold stream come after one step, not a whole window:
//! the `cold_read` harness in `benches/` measures it). A new job starts when the reader is
//! less than a window behind the resident end, so a steady reader never
//! catches up with the disk (for pages already in memory, the job only
//! fills page tables, faster than any reader). When the reader does catch up
//! and no job is under way, as at the start of a stream or after a seek, one
//! `mincore` on the window at the cursor (where the kernel tells the truth)
//! lets it go on at once if the pages are resident anyway; otherwise it waits
//! (a stall) and the window doubles, up to its maximum. `mincore` is not on
//! the steady path: it costs a page-cache lookup per page, and it counts pages
//! that are still being read in (by our own read-ahead) as resident, so
//! trusting it while a job runs would make the reader wait on the disk.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::paging::pacing::BLOCKING_STEP;
use crate::paging::Claim;
use crate::range::steps;
use crate::region::Region;
use crate::stream::job::JobSlot;
use crate::stream::windows::{Mapped, Windows};
use crate::sys::{self, Populate};
use crate::Pager;

/// The read-ahead window sizes of a prefetcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) initial: u64,
    pub(crate) max: u64,
}

impl Window {
    /// The sizes to use for a region of `len` bytes: each at least `page`
    /// bytes (a smaller window only adds trips to the blocking pool: a
    /// 1-byte window made a 1 MiB read take a job per byte) and at most the
    /// region (or one page, for a smaller one), and the initial size no
    /// larger than the maximum.
    fn clamped(self, len: u64, page: u64) -> Self {
        let max = self.max.clamp(page, len.max(page));
        Self {
            initial: self.initial.clamp(page, max),
            max,
        }
    }
}

/// The stream's side of the prefetcher.
#[derive(Debug)]
pub(crate) struct Prefetcher {
    windows: Arc<Windows>,
    job: JobSlot<(Range<u64>, Populate)>,
    /// The range and mode of the job in flight, whose progress counts as
    /// resident as it comes.
    running: Option<(Range<u64>, Populate)>,
    /// Where prefetching stops: the end of the region, or of the bytes known
    /// to exist in a growing file.
    end: u64,
    /// Bytes known to be resident (for `mode`).
    resident: Range<u64>,
    /// How the pages are faulted in: for reading, or writable for writing.
    mode: Populate,
    /// Why the last job failed: reported when the reader gets there.
    error: Option<io::Error>,
    window: u64,
    max_window: u64,
    /// This stream's part of the process's read-ahead budget: the bytes
    /// from the cursor to `claimed_end`.
    claim: Claim<'static>,
    /// The end of the last window asked for (shrinks the claim as the
    /// cursor moves).
    claimed_end: u64,
    trust_mincore: bool,
    /// Resident bytes that `mincore` found still in memory as the reader
    /// got to them.
    checked: Range<u64>,
    pub(crate) prefetched_bytes: u64,
    /// Times the reader found prefetched pages evicted.
    pub(crate) evictions: u64,
    pub(crate) stalls: u64,
}

impl Prefetcher {
    pub(crate) fn new(windows: Arc<Windows>, liveness: Arc<()>, window: Window) -> Self {
        let trust_mincore = windows.object().mincore_is_truthful();
        let end = windows.len();
        let window = window.clamped(end, sys::page_size() as u64);
        Self {
            windows,
            job: JobSlot::new(liveness),
            running: None,
            end,
            resident: 0..0,
            mode: Populate::Read,
            error: None,
            window: window.initial,
            max_window: window.max,
            claim: Pager::current().read_ahead().join(),
            claimed_end: 0,
            trust_mincore,
            checked: 0..0,
            prefetched_bytes: 0,
            evictions: 0,
            stalls: 0,
        }
    }

    /// Moves where prefetching stops (for a file that grew or shrank). The
    /// stream's range must reach that far.
    pub(crate) fn set_end(&mut self, end: u64) {
        debug_assert!(end <= self.windows.len());
        self.end = end;
        self.claimed_end = self.claimed_end.min(end);
        self.resident.end = self.resident.end.min(end);
        self.resident.start = self.resident.start.min(self.resident.end);
    }

    /// Stops counting the bytes of `range` (and any resident bytes before
    /// it) as resident: write-back unmapped them. A write after a seek back
    /// there waits for them to be faulted in again, off the worker.
    pub(crate) fn forget(&mut self, range: Range<u64>) {
        let resident = &mut self.resident;
        if range.start < resident.end && resident.start < range.end {
            resident.start = range.end.min(resident.end);
        }
    }

    /// How many bytes from `pos` (which must be below the end) are resident
    /// (writable, for `Populate::Write`) and safe to touch now, all in the
    /// mapped window it returns with them. At the resident end, registers
    /// the waker and returns `Pending` until the next read-ahead window is
    /// in (and its mapping made, on the pager).
    pub(crate) fn poll_available(
        &mut self,
        cx: &mut Context<'_>,
        pos: u64,
        mode: Populate,
    ) -> Poll<io::Result<(Mapped, u64)>> {
        if mode != self.mode {
            // Pages faulted in for reading are not yet writable: start over.
            self.mode = mode;
            self.resident = pos..pos;
            self.checked = 0..0;
            self.claimed_end = pos;
            self.error = None;
        }
        // What the reader consumed goes back to the budget.
        self.claim.shrink_to(self.claimed_end.saturating_sub(pos));
        loop {
            self.collect();
            if self.resident.contains(&pos) {
                let Some(mapped) = self.windows.at(pos) else {
                    // The stream let go of the window since: map it again,
                    // off the worker, as after a seek.
                    self.resident = pos..pos;
                    continue;
                };
                let Some(end) = self.still_resident(pos) else {
                    // Evicted since they were made resident: take them in
                    // again off the worker, as after a seek.
                    self.resident = pos..pos;
                    self.evictions += 1;
                    continue;
                };
                self.read_ahead(pos);
                let end = end.min(mapped.end());
                return Poll::Ready(Ok((mapped, end - pos)));
            }
            if !self.start_over_at(pos) {
                if let Some(error) = self.error.take() {
                    return Poll::Ready(Err(error));
                }
            }
            let next = self.ahead(pos);
            if !self.job.is_busy() {
                // `mincore` counts pages that are still being read in as
                // resident: ask it only when no job (and so, likely, no
                // read-ahead of ours) is under way, as at the start of a
                // stream or after a seek.
                if self.take_if_resident(next.clone()) {
                    continue;
                }
                self.start(pos, next, true);
            }
            if !self.job.park(cx) || self.take_progress() {
                continue; // the job reported back or got further meanwhile
            }
            self.stalls += 1;
            self.window = self.window.saturating_mul(2).min(self.max_window);
            return Poll::Pending;
        }
    }

    /// Starts the next window while the reader is less than one behind.
    fn read_ahead(&mut self, pos: u64) {
        let end = self.resident.end;
        if self.job.is_busy() || self.error.is_some() || end >= self.end {
            return;
        }
        if end - pos > self.window {
            return;
        }
        self.start(pos, self.ahead(end), false);
    }

    /// The read-ahead window from `from` (below the end): it stops where
    /// prefetching stops, and at the end of the mapping window, since one
    /// job maps one window.
    fn ahead(&self, from: u64) -> Range<u64> {
        let end = from.saturating_add(self.window).min(self.end);
        from..end.min(self.windows.window(from).end)
    }

    /// How far from `pos` (inside the resident range) the pages are still
    /// in memory, or `None` if memory pressure evicted them since a job
    /// made them resident. `mincore` asks once per step as the reader
    /// enters it: a page-cache lookup per page, for a reader that would
    /// otherwise take a major fault on its worker. Where `mincore` is not
    /// truthful, or for writing, the resident range is taken as it is.
    fn still_resident(&mut self, pos: u64) -> Option<u64> {
        let end = self.resident.end;
        if self.mode != Populate::Read || !self.trust_mincore {
            return Some(end);
        }
        if !self.checked.contains(&pos) {
            let step_end = end.min(pos.saturating_add(BLOCKING_STEP));
            let step = pos..step_end.min(self.windows.window(pos).end);
            if !self.windows.is_resident(step.clone()).unwrap_or(true) {
                self.checked = 0..0;
                return None;
            }
            self.checked = step;
        }
        Some(self.checked.end.min(end))
    }

    /// Takes `range` as resident at once if `mincore` (where truthful) says
    /// it is, and the file still reaches that far (a file cut inside a page
    /// keeps that page resident, the rest of it zeros). Only for reading:
    /// `mincore` cannot tell whether a page is mapped writable.
    fn take_if_resident(&mut self, range: Range<u64>) -> bool {
        let resident = self.mode == Populate::Read
            && self.trust_mincore
            && self.resident.end == range.start
            && self.windows.is_resident(range.clone()).unwrap_or(false)
            && self.windows.file_covers(&range);
        if resident {
            self.prefetched_bytes += range.end - range.start;
            self.resident.end = range.end;
            self.checked = range;
        }
        resident
    }

    /// Starts a job that populates `range` on the pager, or as much of it
    /// as the read-ahead budget grants to a stream whose cursor is at `pos`
    /// (and whose reader is `waiting` for it, or not). A waiting reader
    /// always gets a job: the budget grants it at least a step.
    fn start(&mut self, pos: u64, range: Range<u64>, waiting: bool) {
        let wanted = range.end.saturating_sub(pos);
        let more = wanted.saturating_sub(self.claim.held());
        let granted = self.claim.grow(more, waiting);
        let end = range.end - (more - granted);
        if end <= range.start {
            debug_assert!(!waiting, "a waiting reader got no window");
            return;
        }
        let range = range.start..end;
        self.claimed_end = end;
        let windows = Arc::clone(&self.windows);
        let (mode, exact) = (self.mode, self.is_short());
        // A waiting reader whose window is not mapped yet could not ask
        // `mincore` (see `take_if_resident`): the job asks, once mapped.
        let ask_mincore = waiting
            && mode == Populate::Read
            && self.trust_mincore
            && self.resident.end == range.start
            && windows.at(range.start).is_none();
        let tag = (range.clone(), mode);
        self.running = Some(tag.clone());
        let hint = {
            let (windows, first) = (Arc::clone(&windows), first_reads(&range, exact));
            Box::new(move || {
                // On a pager thread: mapping here is fine.
                if let Ok(mapped) = windows.map_at(first.start) {
                    let local = mapped.local(first.start)..mapped.local(first.end);
                    let _ = mapped.region.will_need(local);
                }
            }) as Box<dyn FnOnce() + Send>
        };
        self.job.start_with_hint(tag, Some(hint), move |progress| {
            let mapped = windows.map_at(range.start)?;
            let resident = ask_mincore
                && windows.is_resident(range.clone()).unwrap_or(false)
                && windows.file_covers(&range);
            if resident {
                return Ok(());
            }
            populate_in(&mapped, range, mode, exact, |mark| progress.report(mark))
        });
    }

    /// Whether the stream is short enough (a range request, say: no longer
    /// than the largest window) to ask for exactly its pages.
    fn is_short(&self) -> bool {
        self.end <= self.max_window
    }

    /// Makes `pos..end` (clamped to where prefetching stops) resident on the
    /// calling thread, which may wait on the disk meanwhile, and takes it as
    /// resident.
    pub(crate) fn populate_now(&mut self, pos: u64, end: u64) -> io::Result<()> {
        self.collect();
        if !self.resident.contains(&pos) {
            self.start_over_at(pos);
        }
        let range = self.resident.end..end.min(self.end);
        if range.is_empty() {
            return Ok(());
        }
        for piece in self.windows.pieces(range.clone()) {
            let mapped = self.windows.map_at(piece.start)?;
            populate_in(&mapped, piece, self.mode, self.is_short(), |_| {})?;
        }
        // Done again here: a failed job's error at the old end is stale.
        self.error = None;
        self.extend_resident(range.end);
        Ok(())
    }

    /// After a seek (`pos` neither inside the resident range nor at its
    /// end), starts the resident range over at `pos` and forgets any error.
    /// Returns whether it did.
    fn start_over_at(&mut self, pos: u64) -> bool {
        let seek = self.resident.end != pos;
        if seek {
            self.resident = pos..pos;
            self.checked = 0..0;
            self.claimed_end = pos;
            self.claim.shrink_to(0);
            self.error = None;
        }
        seek
    }

    /// Takes in how far the job in flight got, then its result if it has
    /// finished.
    fn collect(&mut self) {
        self.take_progress();
        let Some(((range, mode), result)) = self.job.take() else {
            return;
        };
        self.running = None;
        // Only a job that reaches the resident end counts; one started
        // before a seek or a change of mode is stale.
        if mode != self.mode || !range.contains(&self.resident.end) {
            return;
        }
        match result {
            Ok(()) => {
                self.extend_resident(range.end);
            }
            Err(error) => self.error = Some(error),
        }
    }

    /// Takes the part of the job in flight that it reported done, if that
    /// continues the resident range. Returns whether the range grew.
    fn take_progress(&mut self) -> bool {
        let Some((range, mode)) = &self.running else {
            return false;
        };
        *mode == self.mode
            && range.start <= self.resident.end
            && self.extend_resident(self.job.progress())
    }

    /// Moves the resident end up to `end` (not past where prefetching
    /// stops), counting the bytes. Returns whether it moved.
    fn extend_resident(&mut self, end: u64) -> bool {
        let end = end.min(self.end);
        let grows = end > self.resident.end;
        if grows {
            self.prefetched_bytes += end - self.resident.end;
            self.resident.end = end;
        }
        grows
    }
}

/// The part of `range` whose reads a job starts at once: all of it for a
/// short stream (`exact`), else its first step (see [`populate`]).
fn first_reads(range: &Range<u64>, exact: bool) -> Range<u64> {
    if exact {
        range.clone()
    } else {
        range.start..range.end.min(range.start.saturating_add(BLOCKING_STEP))
    }
}

/// Makes `range` (of the stream, inside the `mapped` window) resident as
/// [`populate`] does; `report` hears stream offsets. Blocking: runs on the
/// pager (or a thread that may wait on the disk).
fn populate_in(
    mapped: &Mapped,
    range: Range<u64>,
    mode: Populate,
    exact: bool,
    report: impl Fn(u64),
) -> io::Result<()> {
    let local = mapped.local(range.start)..mapped.local(range.end);
    populate(&mapped.region, local, mode, exact, |mark| {
        report(mapped.start + mark)
    })
}

/// Makes `range` of `region` resident for `mode`, in steps. Blocking: runs
/// on the pager (or a thread that may wait on the disk).
///
/// For a long stream, the kernel's read-ahead around the faults reads past
/// the range, which the reader needs next anyway. A short stream (`exact`)
/// asks for exactly its pages first, so that the disk does not read
/// megabytes around a few kilobytes. (Doing that for every window of a long
/// stream halves its throughput and makes the reader's thread wait.) A long
/// stream asks for exactly its first step: the first fault on a cold page
/// otherwise waits for the whole read-around (`read_ahead_kb`, often MiBs)
/// that it starts, which more than doubled the time to a cold stream's
/// first 64 KiB (`cargo run --release -p mapview-benches --bin cold_read`
/// prints it last).
///
/// `report` hears the end of each step done.
fn populate(
    region: &Region,
    range: Range<u64>,
    mode: Populate,
    exact: bool,
    report: impl Fn(u64),
) -> io::Result<()> {
    region.will_need(first_reads(&range, exact))?;
    let range_end = range.end;
    for step in steps(range, BLOCKING_STEP) {
        region.populate(step.clone(), mode)?;
        if mode == Populate::Read {
            // The first copy out of pages fresh off the disk can take
            // milliseconds per 64 KiB on whichever thread makes it; touching
            // them here took a cold reader's longest poll from 7-20 ms to
            // 1-2 ms (`cold_read`). (`mincore` cannot tell fresh pages: it
            // counts pages still being read in as resident, so every window
            // is touched.) By a few threads at once: it is all CPU (see
            // `CpuGate`).
            let _cpu = Pager::current().cpu().enter();
            region.touch(step.clone())?;
        }
        if step.end < range_end {
            // The last step is reported by the job's end, in one hand-off:
            // a reader woken by its report would otherwise see the job
            // still busy and not start the next window.
            report(step.end);
        }
        std::thread::yield_now(); // see `BLOCKING_STEP`
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;
    const MIB: u64 = 1 << 20;

    fn clamped(initial: u64, max: u64, len: u64) -> (u64, u64) {
        let window = Window { initial, max }.clamped(len, PAGE);
        (window.initial, window.max)
    }

    #[test]
    fn windows_are_at_least_a_page() {
        assert_eq!(clamped(0, 0, 100 * MIB), (PAGE, PAGE));
        assert_eq!(clamped(1, 32 * MIB, 100 * MIB), (PAGE, 32 * MIB));
        assert_eq!(clamped(0, 0, 1), (PAGE, PAGE));
    }

    #[test]
    fn windows_are_at_most_the_region() {
        assert_eq!(clamped(u64::MAX, u64::MAX, 10 * MIB), (10 * MIB, 10 * MIB));
        assert_eq!(clamped(2 * MIB, 32 * MIB, 3 * MIB), (2 * MIB, 3 * MIB));
        assert_eq!(clamped(2 * MIB, 32 * MIB, 100), (PAGE, PAGE));
        assert_eq!(clamped(u64::MAX, u64::MAX, 0), (PAGE, PAGE));
    }

    #[test]
    fn the_initial_window_never_exceeds_the_maximum() {
        assert_eq!(clamped(8 * MIB, 2 * MIB, 100 * MIB), (2 * MIB, 2 * MIB));
        assert_eq!(clamped(2 * MIB, 32 * MIB, 100 * MIB), (2 * MIB, 32 * MIB));
    }
}
