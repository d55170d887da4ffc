//! [`JobSlot`]: one background job at a time on tokio's blocking pool, whose
//! result the stream collects on its next poll.
//!
//! ```text
//!   stream (async worker)                  blocking pool
//!   start(tag, work) ── spawn_blocking ──> work() -> io::Result<()>
//!   park(cx): waker into the mailbox <──── mailbox = (tag, result); wake
//!   take(): (tag, result)
//! ```
//!
//! Every job holds a clone of the stream's liveness token, so the stream's
//! [`BackgroundWatch`](crate::BackgroundWatch) sees when the last job of a
//! dropped stream has ended. A job that starts after its stream was dropped
//! skips its work.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
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
}

impl<T> Shared<T> {
    fn mailbox(&self) -> MutexGuard<'_, Mailbox<T>> {
        // Jobs never panic while holding the lock; recover the data anyway.
        self.mailbox.lock().unwrap_or_else(|e| e.into_inner())
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
    pub(crate) fn start(&mut self, tag: T, work: impl FnOnce() -> io::Result<()> + Send + 'static) {
        debug_assert!(!self.busy, "one job at a time");
        self.busy = true;
        let shared = Arc::clone(&self.shared);
        let liveness = Arc::clone(&self.liveness);
        // Detached on purpose: the job ends by itself, and skips its work if
        // the stream is gone by the time it runs.
        drop(self.runtime.spawn_blocking(move || {
            let _alive = liveness;
            if shared.cancelled.load(Ordering::Acquire) {
                return;
            }
            let result = work();
            let waker = {
                let mut mailbox = shared.mailbox();
                mailbox.finished = Some((tag, result));
                mailbox.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }));
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
