//! The background prefetcher of a stream view: it makes the pages ahead of
//! the cursor resident on tokio's blocking pool, so that a poll on an async
//! worker never waits on the disk.
//!
//! ```text
//!   region  |..........|=========resident=========|~~~job~~~|...........|
//!                      ^ pos                       ^ end     ^ end + window
//!   poll: bytes below `end` are safe to touch now; at `end` the poll parks
//!   its waker and returns Pending until the job (MADV_POPULATE_READ of the
//!   next window, off the workers) reports back.
//! ```
//!
//! One job runs at a time and covers one window. A new job starts when the
//! reader is less than a window behind the resident end, so a steady reader
//! never catches up with the disk (for pages already in memory, the job only
//! fills page tables, faster than any reader). When the reader does catch up,
//! one `mincore` on the window at the cursor (where the kernel tells the
//! truth) lets it go on at once if the pages are resident anyway, as at the
//! start of a hot file or after a seek; otherwise it waits (a stall) and the
//! window doubles, up to its maximum. `mincore` is not on the steady path:
//! it costs a page-cache lookup per page.

use std::any::Any;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use tokio::runtime::Handle;

use crate::region::Region;
use crate::sys::{self, Populate};

/// What a finished job reports, and who to wake for it.
#[derive(Debug, Default)]
struct Mailbox {
    finished: Option<(Range<u64>, io::Result<()>)>,
    waker: Option<Waker>,
}

/// The state shared between a stream and its job in flight.
#[derive(Debug)]
struct Shared {
    region: Arc<Region>,
    mailbox: Mutex<Mailbox>,
    cancelled: AtomicBool,
}

impl Shared {
    fn mailbox(&self) -> MutexGuard<'_, Mailbox> {
        // A job never panics while holding the lock; recover the data anyway.
        self.mailbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The read-ahead window sizes of a prefetcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) initial: u64,
    pub(crate) max: u64,
}

/// The stream's side of the prefetcher.
#[derive(Debug)]
pub(crate) struct Prefetcher {
    shared: Arc<Shared>,
    runtime: Handle,
    /// Bytes known to be resident.
    resident: Range<u64>,
    /// The range of the job in flight, if any.
    in_flight: Option<Range<u64>>,
    /// Why the last job failed: reported when the reader gets there.
    error: Option<io::Error>,
    window: u64,
    max_window: u64,
    trust_mincore: bool,
    pub(crate) prefetched_bytes: u64,
    pub(crate) stalls: u64,
}

impl Prefetcher {
    pub(crate) fn new(region: Arc<Region>, runtime: Handle, window: Window) -> Self {
        let trust_mincore = sys::mincore_is_truthful(&region.object().file);
        Self {
            shared: Arc::new(Shared {
                region,
                mailbox: Mutex::default(),
                cancelled: AtomicBool::new(false),
            }),
            runtime,
            resident: 0..0,
            in_flight: None,
            error: None,
            window: window.initial.max(1),
            max_window: window.max.max(window.initial).max(1),
            trust_mincore,
            prefetched_bytes: 0,
            stalls: 0,
        }
    }

    fn len(&self) -> u64 {
        self.shared.region.len()
    }

    /// How many bytes from `pos` (which must be below the region's length)
    /// are resident and safe to touch now. At the resident end, registers the
    /// waker and returns `Pending` until the next window is in.
    pub(crate) fn poll_available(
        &mut self,
        cx: &mut Context<'_>,
        pos: u64,
    ) -> Poll<io::Result<u64>> {
        loop {
            self.collect();
            if self.resident.contains(&pos) {
                self.read_ahead(pos);
                return Poll::Ready(Ok(self.resident.end - pos));
            }
            if self.resident.end != pos {
                // A seek: the window starts over at the new position.
                self.resident = pos..pos;
                self.error = None;
            } else if let Some(error) = self.error.take() {
                return Poll::Ready(Err(error));
            }
            let next = pos..(pos + self.window).min(self.len());
            if self.take_if_resident(next.clone()) {
                continue;
            }
            if self.in_flight.is_none() {
                self.start(next);
            }
            if !self.park(cx) {
                continue; // the job reported back meanwhile
            }
            self.stalls += 1;
            self.window = (self.window * 2).min(self.max_window);
            return Poll::Pending;
        }
    }

    /// Starts the next window while the reader is less than one behind.
    fn read_ahead(&mut self, pos: u64) {
        let end = self.resident.end;
        if self.in_flight.is_some() || self.error.is_some() || end >= self.len() {
            return;
        }
        if end - pos > self.window {
            return;
        }
        self.start(end..(end + self.window).min(self.len()));
    }

    /// Takes `range` as resident at once if `mincore` (where truthful) says
    /// it is.
    fn take_if_resident(&mut self, range: Range<u64>) -> bool {
        let resident = self.trust_mincore
            && self.resident.end == range.start
            && self
                .shared
                .region
                .is_resident(range.clone())
                .unwrap_or(false);
        if resident {
            self.prefetched_bytes += range.end - range.start;
            self.resident.end = range.end;
        }
        resident
    }

    /// Starts a job that populates `range` on the blocking pool.
    fn start(&mut self, range: Range<u64>) {
        self.in_flight = Some(range.clone());
        let shared = Arc::clone(&self.shared);
        // Detached on purpose: the job ends by itself after one window, and
        // skips its work if the stream is gone by the time it runs.
        drop(self.runtime.spawn_blocking(move || {
            if shared.cancelled.load(Ordering::Acquire) {
                return;
            }
            let result = shared.region.populate(range.clone(), Populate::Read);
            let waker = {
                let mut mailbox = shared.mailbox();
                mailbox.finished = Some((range, result));
                mailbox.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }));
    }

    /// Takes in the result of a finished job, if any.
    fn collect(&mut self) {
        if self.in_flight.is_none() {
            return;
        }
        let Some((range, result)) = self.shared.mailbox().finished.take() else {
            return;
        };
        self.in_flight = None;
        match result {
            // Only a window that continues the resident range counts; one
            // started before a seek is stale.
            Ok(()) if range.start == self.resident.end => {
                self.prefetched_bytes += range.end - range.start;
                self.resident.end = range.end;
            }
            Ok(()) => {}
            Err(error) if range.start == self.resident.end => self.error = Some(error),
            Err(_) => {}
        }
    }

    /// Parks the waker for the job in flight. Returns `false` if the job has
    /// already reported back (poll again instead of sleeping).
    fn park(&mut self, cx: &mut Context<'_>) -> bool {
        let mut mailbox = self.shared.mailbox();
        if mailbox.finished.is_some() {
            return false;
        }
        match &mut mailbox.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => mailbox.waker = Some(cx.waker().clone()),
        }
        true
    }

    /// A handle that tells when the background work of this prefetcher has
    /// ended.
    pub(crate) fn watch(&self) -> Weak<dyn Any + Send + Sync> {
        let shared: Arc<dyn Any + Send + Sync> = self.shared.clone();
        Arc::downgrade(&shared)
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.shared.cancelled.store(true, Ordering::Release);
    }
}
