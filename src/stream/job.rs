//! [`JobSlot`]: one background job at a time on the process's
//! [`Pager`](crate::Pager), whose result the stream collects on its next
//! poll.
//!
//! ```text
//!   stream (async worker)                  pager thread
//!   start(tag, work) ── Pager::submit ───> work(progress) -> io::Result<()>
//!   progress(): how far it got   <──────── progress.report(mark); wake
//!   park(cx): waker in, job urgent <────── finished = (tag, result); wake
//!   take(): (tag, result)
//! ```
//!
//! A job holds a clone of the stream's liveness token, so the stream's
//! [`BackgroundWatch`](crate::BackgroundWatch) sees when the last job of a
//! dropped stream has ended. A job whose stream was dropped before it ran
//! skips its work. A job that panics, or that the pager drops unrun,
//! reports an error, so its stream never waits for it forever.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Waker};

use crate::Pager;

/// What a job and its stream hand each other.
struct Mailbox<T> {
    /// What a finished job reports.
    finished: Option<(T, io::Result<()>)>,
    /// Who to wake for it.
    waker: Option<Waker>,
}

struct Shared<T> {
    mailbox: Mutex<Mailbox<T>>,
    cancelled: AtomicBool,
    /// Set while the stream waits for the job: the pager runs it first.
    urgent: Arc<AtomicBool>,
    /// The mark the running job last reported (0 before it reports).
    progress: AtomicU64,
}

impl<T> Shared<T> {
    fn mailbox(&self) -> MutexGuard<'_, Mailbox<T>> {
        // Nothing panics while holding the lock; recover the data anyway.
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

/// A job handed to the pager: its result goes to the mailbox exactly once,
/// when it finishes, panics, or is dropped unrun.
struct Job<T> {
    shared: Arc<Shared<T>>,
    tag: Option<T>,
    _alive: Arc<()>,
}

impl<T> Job<T> {
    fn run(mut self, work: impl FnOnce(&Progress<'_, T>) -> io::Result<()>) {
        if self.shared.cancelled.load(Ordering::Acquire) {
            return;
        }
        let progress = Progress(&*self.shared);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&progress)))
            .unwrap_or_else(|_| Err(io::Error::other("a background job of the stream panicked")));
        self.finish(result);
    }

    fn finish(&mut self, result: io::Result<()>) {
        if let Some(tag) = self.tag.take() {
            self.shared.mailbox().finished = Some((tag, result));
            self.shared.wake();
        }
    }
}

impl<T> Drop for Job<T> {
    fn drop(&mut self) {
        self.finish(Err(io::Error::other(
            "the stream's background job was dropped unrun (no pager thread could start)",
        )));
    }
}

/// A slot for one background job, tagged with a `T` that says what it did.
pub(crate) struct JobSlot<T> {
    shared: Arc<Shared<T>>,
    liveness: Arc<()>,
    busy: bool,
}

impl<T> std::fmt::Debug for JobSlot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSlot")
            .field("busy", &self.busy)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> JobSlot<T> {
    pub(crate) fn new(liveness: Arc<()>) -> Self {
        Self {
            shared: Arc::new(Shared {
                mailbox: Mutex::new(Mailbox {
                    finished: None,
                    waker: None,
                }),
                cancelled: AtomicBool::new(false),
                urgent: Arc::new(AtomicBool::new(false)),
                progress: AtomicU64::new(0),
            }),
            liveness,
            busy: false,
        }
    }

    /// Whether a job was started and its result not yet taken.
    pub(crate) fn is_busy(&self) -> bool {
        self.busy
    }

    /// Runs `work` on the pager. The slot must not be busy.
    pub(crate) fn start(
        &mut self,
        tag: T,
        work: impl FnOnce(&Progress<'_, T>) -> io::Result<()> + Send + 'static,
    ) {
        self.start_with_hint(tag, None, work);
    }

    /// [`start`](JobSlot::start), with a `hint` that starts the job's reads
    /// without waiting, which the pager may run while the job still waits
    /// for a thread (see `Pager::submit`). Skipped once the
    /// stream is gone.
    pub(crate) fn start_with_hint(
        &mut self,
        tag: T,
        hint: Option<Box<dyn FnOnce() + Send>>,
        work: impl FnOnce(&Progress<'_, T>) -> io::Result<()> + Send + 'static,
    ) {
        debug_assert!(!self.busy, "one job at a time");
        self.busy = true;
        self.shared.progress.store(0, Ordering::Relaxed);
        self.shared.urgent.store(false, Ordering::Relaxed);
        let job = Job {
            shared: Arc::clone(&self.shared),
            tag: Some(tag),
            _alive: Arc::clone(&self.liveness),
        };
        let hint = hint.map(|hint| {
            let shared = Arc::clone(&self.shared);
            Box::new(move || {
                if !shared.cancelled.load(Ordering::Acquire) {
                    hint();
                }
            }) as Box<dyn FnOnce() + Send>
        });
        // A pager that cannot run the job drops it, and the job reports
        // that as its result: nothing more to do with the error here.
        let _ = Pager::current().submit(
            Arc::clone(&self.shared.urgent),
            hint,
            Box::new(move || job.run(work)),
        );
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

    /// Parks the task's waker until the job in flight finishes, and marks
    /// the job urgent. Returns `false` if it has already finished (take its
    /// result instead of sleeping).
    pub(crate) fn park(&self, cx: &mut Context<'_>) -> bool {
        let mut mailbox = self.shared.mailbox();
        if mailbox.finished.is_some() {
            return false;
        }
        match &mut mailbox.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => mailbox.waker = Some(cx.waker().clone()),
        }
        self.shared.urgent.store(true, Ordering::Release);
        true
    }
}

impl<T> Drop for JobSlot<T> {
    fn drop(&mut self) {
        self.shared.cancelled.store(true, Ordering::Release);
    }
}
