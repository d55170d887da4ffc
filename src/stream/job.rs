//! [`JobSlot`]: one background job at a time on tokio's blocking pool, whose
//! result the stream collects on its next poll.
//!
//! ```text
//!   stream (async worker)                  blocking pool
//!   start(tag, work) ── spawn_blocking ──> work(progress) -> io::Result<()>
//!   progress(): how far it got   <──────── progress.report(mark); wake
//!   park(cx): waker into the mailbox <──── mailbox = (tag, result); wake
//!   take(): (tag, result)
//! ```
//!
//! Every job holds a clone of the stream's liveness token, so the stream's
//! [`BackgroundWatch`](crate::BackgroundWatch) sees when the last job of a
//! dropped stream has ended. A job that starts after its stream was dropped
//! skips its work.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Waker};

use tokio::runtime::Handle;

/// What a finished job reports, and who to wake for it.
#[derive(Debug)]
struct Mailbox<T> {
    finished: Option<(T, io::Result<()>)>,
    waker: Option<Waker>,
}

#[derive(Debug)]
struct Shared<T> {
    mailbox: Mutex<Mailbox<T>>,
    cancelled: AtomicBool,
    /// The mark the running job last reported (0 before it reports).
    progress: AtomicU64,
}

impl<T> Shared<T> {
    fn mailbox(&self) -> MutexGuard<'_, Mailbox<T>> {
        // Jobs never panic while holding the lock; recover the data anyway.
        self.mailbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        let waker = self.mailbox().waker.take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// How a running job tells its stream how far it got before it finishes.
pub(crate) struct Progress<'a, T>(&'a Shared<T>);

impl<T> Progress<'_, T> {
    /// Publishes `mark` (what it means is the job's business; it only ever
    /// grows) and wakes the stream if it waits.
    pub(crate) fn report(&self, mark: u64) {
        // Stored before the mailbox is locked: a stream that parks its waker
        // and then reads the mark either sees it or is woken here.
        self.0.progress.store(mark, Ordering::Release);
        self.0.wake();
    }
}

/// A slot for one background job, tagged with a `T` that says what it did.
#[derive(Debug)]
pub(crate) struct JobSlot<T> {
    shared: Arc<Shared<T>>,
    runtime: Handle,
    liveness: Arc<()>,
    busy: bool,
}

impl<T: Send + 'static> JobSlot<T> {
    pub(crate) fn new(runtime: Handle, liveness: Arc<()>) -> Self {
        Self {
            shared: Arc::new(Shared {
                mailbox: Mutex::new(Mailbox {
                    finished: None,
                    waker: None,
                }),
                cancelled: AtomicBool::new(false),
                progress: AtomicU64::new(0),
            }),
            runtime,
            liveness,
            busy: false,
        }
    }

    /// Whether a job was started and its result not yet taken.
    pub(crate) fn is_busy(&self) -> bool {
        self.busy
    }

    /// Runs `work` on the blocking pool. The slot must not be busy.
    pub(crate) fn start(
        &mut self,
        tag: T,
        work: impl FnOnce(&Progress<'_, T>) -> io::Result<()> + Send + 'static,
    ) {
        debug_assert!(!self.busy, "one job at a time");
        self.busy = true;
        self.shared.progress.store(0, Ordering::Relaxed);
        let shared = Arc::clone(&self.shared);
        let liveness = Arc::clone(&self.liveness);
        // Detached on purpose: the job ends by itself, and skips its work if
        // the stream is gone by the time it runs.
        drop(self.runtime.spawn_blocking(move || {
            let _alive = liveness;
            if shared.cancelled.load(Ordering::Acquire) {
                return;
            }
            let result = work(&Progress(&shared));
            shared.mailbox().finished = Some((tag, result));
            shared.wake();
        }));
    }

    /// The last mark the job in flight reported (0 if none yet). Read it
    /// again after [`park`](JobSlot::park): a report in between wakes the
    /// task.
    pub(crate) fn progress(&self) -> u64 {
        self.shared.progress.load(Ordering::Acquire)
    }

    /// The finished job's tag and result, if it has finished.
    pub(crate) fn take(&mut self) -> Option<(T, io::Result<()>)> {
        if !self.busy {
            return None;
        }
        let finished = self.shared.mailbox().finished.take();
        self.busy = finished.is_none();
        finished
    }

    /// Parks the task's waker until the job in flight finishes. Returns
    /// `false` if it has already finished (take its result instead of
    /// sleeping).
    pub(crate) fn park(&self, cx: &mut Context<'_>) -> bool {
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
}

impl<T> Drop for JobSlot<T> {
    fn drop(&mut self) {
        self.shared.cancelled.store(true, Ordering::Release);
    }
}
