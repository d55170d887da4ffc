//! [`JobSlot`]: one background job at a time on tokio's blocking pool, whose
//! result the stream collects on its next poll.
//!
//! ```text
//!   stream (async worker)                  runner (blocking pool)
//!   start(tag, work) ── queue; notify, ──> work(progress) -> io::Result<()>
//!                       or spawn_blocking  then waits LINGER for the next
//!   progress(): how far it got   <──────── progress.report(mark); wake
//!   park(cx): waker into the mailbox <──── mailbox = (tag, result); wake
//!   take(): (tag, result)
//! ```
//!
//! A runner stays for [`LINGER`] after its job for the next one, so a busy
//! stream calls `spawn_blocking` once per burst, not once per job:
//! `spawn_blocking` takes the blocking pool's mutex, which its threads hold
//! too, and on a loaded machine the async worker slept on it for up to 7 ms
//! (`perf` switch events, `examples/write_latency.rs`). The slot's own
//! mutex is shared only by the stream and its runner, for a few loads and
//! stores at a time.
//!
//! The runner holds a clone of the stream's liveness token, so the stream's
//! [`BackgroundWatch`](crate::BackgroundWatch) sees when the last job of a
//! dropped stream has ended. A runner whose stream was dropped skips any
//! queued work and ends.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Waker};
use std::time::Duration;

use tokio::runtime::Handle;

use crate::sys;

/// How long a runner waits for its stream's next job before it ends.
const LINGER: Duration = Duration::from_millis(5);

/// A job's work: blocking, reporting progress as it goes.
type Work<T> = Box<dyn FnOnce(&Progress<'_, T>) -> io::Result<()> + Send>;

/// What the stream and its runner hand each other.
struct Mailbox<T> {
    /// Queued for the runner.
    next: Option<(T, Work<T>)>,
    /// What a finished job reports.
    finished: Option<(T, io::Result<()>)>,
    /// Who to wake for it.
    waker: Option<Waker>,
    /// Whether a runner is alive and will look at `next`.
    runner: bool,
}

struct Shared<T> {
    mailbox: Mutex<Mailbox<T>>,
    /// Signalled when work is queued or the stream is gone.
    work_queued: Condvar,
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

    /// The next queued job, waiting up to [`LINGER`] for one. `None` when
    /// there is none or the stream is gone: the runner then ends.
    fn next_job(&self) -> Option<(T, Work<T>)> {
        let mut mailbox = self.mailbox();
        loop {
            if self.cancelled.load(Ordering::Acquire) {
                mailbox.next = None;
                break;
            }
            if let Some(job) = mailbox.next.take() {
                return Some(job);
            }
            let (guard, wait) = self
                .work_queued
                .wait_timeout(mailbox, LINGER)
                .unwrap_or_else(|e| e.into_inner());
            mailbox = guard;
            if wait.timed_out() && mailbox.next.is_none() {
                break;
            }
        }
        mailbox.runner = false;
        None
    }

    /// Runs queued jobs until none comes within [`LINGER`].
    fn run(&self) {
        while let Some((tag, work)) = self.next_job() {
            let result = work(&Progress(self));
            self.mailbox().finished = Some((tag, result));
            self.wake();
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
pub(crate) struct JobSlot<T> {
    shared: Arc<Shared<T>>,
    runtime: Handle,
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
    pub(crate) fn new(runtime: Handle, liveness: Arc<()>) -> Self {
        Self {
            shared: Arc::new(Shared {
                mailbox: Mutex::new(Mailbox {
                    next: None,
                    finished: None,
                    waker: None,
                    runner: false,
                }),
                work_queued: Condvar::new(),
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

    /// Runs `work` on the blocking pool: on the runner that waits for it,
    /// or a new one. The slot must not be busy.
    pub(crate) fn start(
        &mut self,
        tag: T,
        work: impl FnOnce(&Progress<'_, T>) -> io::Result<()> + Send + 'static,
    ) {
        debug_assert!(!self.busy, "one job at a time");
        self.busy = true;
        self.shared.progress.store(0, Ordering::Relaxed);
        let spawn = {
            let mut mailbox = self.shared.mailbox();
            mailbox.next = Some((tag, Box::new(work)));
            !std::mem::replace(&mut mailbox.runner, true)
        };
        if !spawn {
            self.shared.work_queued.notify_one();
            return;
        }
        let shared = Arc::clone(&self.shared);
        let liveness = Arc::clone(&self.liveness);
        // Detached on purpose: the runner ends by itself, at once if the
        // stream is gone.
        drop(self.runtime.spawn_blocking(move || {
            let _alive = liveness;
            let _batch = sys::BatchScheduling::enter();
            shared.run();
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
        // Under the lock, so a runner cannot miss it between its check and
        // its wait.
        let _mailbox = self.shared.mailbox();
        self.shared.cancelled.store(true, Ordering::Release);
        self.shared.work_queued.notify_all();
    }
}
