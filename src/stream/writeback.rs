//! The writeback side of a stream view's background work: it writes dirty
//! ranges behind the cursor to the file, keeps the dirty bytes under a bound
//! (backpressure), and makes flushes durable.
//!
//! Writeback is a two-stage pipeline, so the disk always has the next batch
//! while the job waits for the previous one:
//!
//! ```text
//!   poll_write ─ copy in ─ record ─> dirty ──(a quarter of the limit)──┐
//!                                                                      v
//!   job: MADV_DONTNEED(batch)                   unmap the batch's pages
//!        in 1 MiB steps, side by side:
//!          sync_file_range(batch, WRITE)        start the batch's I/O
//!          sync_file_range(started, WAIT|WRITE) wait for the previous one,
//!                                               report the step: room
//!        -> the batch becomes "started", started becomes clean
//!           (flushed_bytes); dirty keeps what lies past the batch
//!
//!   at the limit (dirty + started + in the job, less the steps reported):
//!   poll_write is Pending until a step or a job frees room.
//!   poll_flush: job msync(MS_SYNC) of everything written since the last
//!   flush; Ready only when that succeeded: durable.
//! ```
//!
//! Only file-backed, read-write streams have anything to write back. For
//! shared or anonymous memory and copy-on-write maps a flush is a memory
//! fence and writes are never held back.
//!
//! Errors are sticky, as a write-back error is in the kernel (and as
//! tokio's `fs::File` keeps its `last_write_err`, but for good): once a
//! write-back job, a flush or a write has failed in a way that may have lost
//! bytes the stream accepted (a truncated file, an I/O error), every later
//! write, flush and shutdown fails too. A flush that then said `Ok` would
//! claim durability for bytes that are gone. A write refused with
//! `StorageFull` (no room for a new page of a sparse file) took none of its
//! bytes and lost none before it, like `write(2)`'s `ENOSPC`: it is not kept.
//!
//! The batch behind the cursor is unmapped before its I/O starts, and ends
//! on a folio boundary ([`FOLIO_MAX`]). Writing back a page that is mapped
//! writable makes the kernel write-protect it, with a TLB flush per page (an
//! interrupt to the other CPUs that run the process, the async workers
//! among them); that cost a third of the write throughput
//! (`cargo bench -p mapview-benches --bench write`, profiled with `perf`). Pages behind the
//! cursor are not touched again by a sequential writer, so unmapping them
//! costs nothing; a write after a seek back faults them in again.

use std::io;
use std::ops::Range;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::object::{Access, Backing};
use crate::paging::pacing::BLOCKING_STEP;
use crate::range::steps;
use crate::stream::job::JobSlot;
use crate::stream::windows::Windows;

/// The largest page-cache folio (a PMD, on x86-64): the kernel writes back
/// whole folios, so a batch that ends on a multiple of this (in the file)
/// leaves no folio half behind and half ahead of the cursor.
const FOLIO_MAX: u64 = 2 << 20;

/// Some bytes of a range: the range covers them, `bytes` counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Batch {
    range: Range<u64>,
    bytes: u64,
}

impl Batch {
    /// The part below `at` (inside the range) and the rest. The rest keeps
    /// as many of the bytes as it can cover.
    fn split_at(self, at: u64) -> (Batch, Option<Batch>) {
        if at >= self.range.end {
            return (self, None);
        }
        let rest = self.bytes.min(self.range.end - at);
        let below = Batch {
            range: self.range.start..at,
            bytes: self.bytes - rest,
        };
        let rest = Batch {
            range: at..self.range.end,
            bytes: rest,
        };
        (below, Some(rest))
    }
}

/// The bytes of a batch, if any.
fn bytes_of(batch: &Option<Batch>) -> u64 {
    batch.as_ref().map_or(0, |b| b.bytes)
}

/// The range of a batch, if any.
fn range_of(batch: &Option<Batch>) -> Option<Range<u64>> {
    batch.as_ref().map(|b| b.range.clone())
}

/// What a writeback job did.
#[derive(Debug)]
enum FileJob {
    /// Started the I/O of `start` and waited for that of `wait`.
    WriteBack {
        start: Option<Batch>,
        wait: Option<Batch>,
    },
    /// Made a range durable; `bytes` of it were not yet written back before.
    Sync { bytes: u64 },
}

/// The smallest range that covers both.
fn union(a: Option<Range<u64>>, b: Range<u64>) -> Range<u64> {
    match a {
        Some(a) => a.start.min(b.start)..a.end.max(b.end),
        None => b,
    }
}

/// The stream's side of writeback.
#[derive(Debug)]
pub(crate) struct Writeback {
    windows: Arc<Windows>,
    job: JobSlot<FileJob>,
    /// Whether there is a file to write back to.
    persisted: bool,
    limit: u64,
    /// Written, I/O not yet started.
    dirty: Option<Batch>,
    /// I/O started by a finished job, not yet known to be done.
    started: Option<Batch>,
    /// Bytes of the job in flight that it frees only when it finishes.
    in_job: u64,
    /// The batch the job in flight waits for: the steps it reports are on
    /// the disk.
    waiting: Option<Batch>,
    /// Written since the last durable flush started.
    unsynced: Option<Range<u64>>,
    /// What jobs unmapped (see [`Windows::release`]) since the stream last
    /// asked.
    released: Option<Range<u64>>,
    /// The first error that may have lost accepted bytes, kept for good.
    failure: Option<io::Error>,
    pub(crate) flushed_bytes: u64,
}

impl Writeback {
    pub(crate) fn new(windows: Arc<Windows>, liveness: Arc<()>, limit: u64) -> Self {
        let object = windows.object();
        let persisted =
            object.access == Access::ReadWrite && matches!(object.backing, Backing::Persisted);
        Self {
            windows,
            job: JobSlot::new(liveness),
            persisted,
            limit: limit.max(1),
            dirty: None,
            started: None,
            in_job: 0,
            waiting: None,
            unsynced: None,
            released: None,
            failure: None,
            flushed_bytes: 0,
        }
    }

    /// Bytes written and not yet known to be on the disk.
    pub(crate) fn dirty_bytes(&self) -> u64 {
        bytes_of(&self.dirty) + bytes_of(&self.started) + self.in_job + self.still_waiting()
    }

    /// The bytes of the batch the job in flight waits for that it has not
    /// reported on the disk: all that its range past the last reported step
    /// can hold (the batch may have holes, so this may count more than are
    /// left, never fewer).
    fn still_waiting(&self) -> u64 {
        let Some(batch) = &self.waiting else {
            return 0;
        };
        let done = self
            .job
            .progress()
            .clamp(batch.range.start, batch.range.end);
        batch.bytes.min(batch.range.end - done)
    }

    /// The bytes whose pages write-back unmapped (or is about to) since the
    /// last call: they are not resident for the stream any more.
    pub(crate) fn take_released(&mut self) -> Option<Range<u64>> {
        self.released.take()
    }

    /// How many more bytes may be written now at `cursor`. `Pending` while
    /// the dirty bytes are at the limit, until writeback frees room.
    pub(crate) fn poll_room(&mut self, cx: &mut Context<'_>, cursor: u64) -> Poll<io::Result<u64>> {
        self.check_failure()?;
        if !self.persisted {
            return Poll::Ready(Ok(u64::MAX));
        }
        loop {
            self.collect();
            self.check_failure()?;
            let used = self.dirty_bytes();
            if used < self.limit {
                return Poll::Ready(Ok(self.limit - used));
            }
            if !self.job.is_busy() {
                self.start_write_back(cursor);
            }
            if self.job.park(cx) && self.dirty_bytes() >= self.limit {
                return Poll::Pending; // a step reported after `park` wakes us
            }
        }
    }

    /// Records that `range` was written (the cursor is now at its end).
    /// Starts writing the dirty bytes back once they reach a quarter of the
    /// limit.
    pub(crate) fn record(&mut self, range: Range<u64>) {
        if !self.persisted {
            return;
        }
        let covered = union(range_of(&self.dirty), range.clone());
        let bytes =
            (bytes_of(&self.dirty) + range.end - range.start).min(covered.end - covered.start);
        self.dirty = Some(Batch {
            range: covered,
            bytes,
        });
        let cursor = range.end;
        self.unsynced = Some(union(self.unsynced.take(), range));
        if bytes >= self.limit / 4 && !self.job.is_busy() {
            self.start_write_back(cursor);
        }
    }

    /// The dirty bytes up to the last folio boundary in them (all of them
    /// if there is none), taken out of `dirty`.
    fn take_batch(&mut self) -> Option<Batch> {
        let dirty = self.dirty.take()?;
        let range = &dirty.range;
        let end = self.windows.object_offset(range.end);
        let boundary = end - end % FOLIO_MAX;
        let at = boundary.saturating_sub(self.windows.object_offset(0));
        let (batch, rest) = if at > range.start {
            dirty.split_at(at)
        } else {
            (dirty, None)
        };
        self.dirty = rest;
        Some(batch)
    }

    /// The part of `range` behind `cursor`, which the next job unmaps.
    fn release_behind(&mut self, range: &Range<u64>, cursor: u64) -> Range<u64> {
        let release = range.start..range.end.min(cursor).max(range.start);
        self.released = Some(union(self.released.take(), release.clone()));
        release
    }

    /// Starts the I/O of a dirty batch and waits for the started one.
    fn start_write_back(&mut self, cursor: u64) {
        let start = self.take_batch();
        let wait = self.started.take();
        self.in_job = bytes_of(&start);
        self.waiting = wait.clone();
        let windows = Arc::clone(&self.windows);
        let (start_range, wait_range) = (range_of(&start), range_of(&wait));
        let release = start_range
            .as_ref()
            .map(|range| self.release_behind(range, cursor));
        let job = FileJob::WriteBack { start, wait };
        self.job.start(job, move |progress| {
            if let Some(range) = release {
                windows.release(range)?;
            }
            let mut starts = start_range
                .into_iter()
                .flat_map(|r| steps(r, BLOCKING_STEP));
            let mut waits = wait_range.into_iter().flat_map(|r| steps(r, BLOCKING_STEP));
            loop {
                let (start, wait) = (starts.next(), waits.next());
                if start.is_none() && wait.is_none() {
                    return Ok(());
                }
                if let Some(step) = start {
                    windows.write_back(step, false)?;
                }
                if let Some(step) = wait {
                    let end = step.end;
                    windows.write_back(step, true)?;
                    progress.report(end);
                }
                std::thread::yield_now(); // see `BLOCKING_STEP`
            }
        });
    }

    /// Starts making everything written since the last flush durable.
    fn start_sync(&mut self, range: Range<u64>, cursor: u64) {
        let bytes = self.dirty_bytes();
        self.dirty = None;
        self.started = None;
        self.in_job = bytes;
        self.waiting = None;
        let windows = Arc::clone(&self.windows);
        let release = self.release_behind(&range, cursor);
        let job = FileJob::Sync { bytes };
        self.job.start(job, move |_| {
            windows.release(release)?;
            windows.sync(range)
        });
    }

    /// Takes in the result of a finished job, if any.
    fn collect(&mut self) {
        let Some((job, result)) = self.job.take() else {
            return;
        };
        self.in_job = 0;
        self.waiting = None;
        match (job, result) {
            (FileJob::WriteBack { start, wait }, Ok(())) => {
                self.flushed_bytes += bytes_of(&wait);
                self.started = start;
            }
            (FileJob::Sync { bytes, .. }, Ok(())) => self.flushed_bytes += bytes,
            (_, Err(error)) => self.keep(error),
        }
    }

    /// Keeps the first error for good.
    fn keep(&mut self, error: io::Error) {
        self.failure.get_or_insert(error);
    }

    /// Passes on the result of a write, keeping its error if it may have
    /// lost accepted bytes (see the module docs).
    pub(crate) fn note<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(error) = &result {
            if error.kind() != io::ErrorKind::StorageFull {
                self.keep(io::Error::new(error.kind(), error.to_string()));
            }
        }
        result
    }

    /// The kept error, reported again.
    fn check_failure(&self) -> io::Result<()> {
        match &self.failure {
            None => Ok(()),
            Some(failure) => Err(io::Error::new(
                failure.kind(),
                format!(
                    "a write or flush of this stream failed, written bytes may be lost: {failure}"
                ),
            )),
        }
    }

    /// Completes when every byte recorded so far is durable in the file.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>, cursor: u64) -> Poll<io::Result<()>> {
        self.check_failure()?;
        if !self.persisted {
            fence(Ordering::SeqCst);
            return Poll::Ready(Ok(()));
        }
        loop {
            self.collect();
            self.check_failure()?;
            if !self.job.is_busy() {
                let Some(range) = self.unsynced.take() else {
                    return Poll::Ready(Ok(()));
                };
                self.start_sync(range, cursor);
            }
            if self.job.park(cx) {
                return Poll::Pending;
            }
        }
    }
}
