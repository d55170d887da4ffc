//! [`Pager`]: the process-wide threads that do the background work of every
//! stream and tail, bounded in number, fair across streams, and at a lower
//! CPU priority than the async workers.

use std::fmt;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;

use super::cpu_gate::CpuGate;
use super::pacing::{
    CPU_PER_CORE, KEEP_ALIVE, LOOKAHEAD, MAX_DEFAULT, MAX_READ_AHEAD, MEMORY_SHARE, PER_CORE,
    POLICY,
};
use super::queue::{Queue, Task, Wake};
use super::read_ahead::ReadAhead;
use crate::sys;

/// A unit of background work.
type Work = Box<dyn FnOnce() + Send>;

/// The pager every stream of the process uses, set up on first use.
static GLOBAL: OnceLock<Pager> = OnceLock::new();

/// The threads that do the background work of every [`ViewStream`] and
/// [`Tail`] in the process: making pages resident ahead of readers and
/// writing dirty pages back behind writers.
///
/// However many streams are open, the process runs at most
/// [`threads`](Pager::threads) of these threads (by default eight per core,
/// at most 32). A stream has at most one job queued at a time, and jobs run
/// in the order they were queued, so the threads are shared round-robin; a
/// job whose stream is waiting for it (its last poll returned `Pending`)
/// runs before jobs that only work ahead. One more thread gives memory back
/// (releases the pages behind reading cursors, unmaps regions), so that
/// this never waits behind jobs that wait on the disk. The threads run
/// under `SCHED_BATCH`, so waking one never preempts an async worker on its
/// CPU, and an idle thread ends after 10 seconds.
///
/// There is one pager a process. It starts with default settings when the
/// first stream needs it; to change them, [`install`](PagerBuilder::install)
/// one before that.
///
/// [`ViewStream`]: crate::ViewStream
/// [`Tail`]: crate::Tail
///
/// # Examples
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// // At the start of `main`, before any stream is made:
/// mapview::Pager::builder().threads(8).install()?;
/// assert_eq!(mapview::Pager::current().threads(), 8);
/// # Ok(())
/// # }
/// ```
pub struct Pager {
    /// The jobs of streams and tails.
    jobs: Arc<Pool>,
    /// Work that gives memory back: pages released behind a cursor, a
    /// region unmapped. Short work on the CPU, on a thread of its own, so
    /// that it never waits behind jobs that wait on the disk: behind a
    /// thousand streams' jobs, pages released on the jobs' threads stayed
    /// mapped for seconds (5 GiB peak RSS against 1.9 with the release on
    /// the worker, `scale --streams 1024`).
    reclaims: Arc<Pool>,
    read_ahead: ReadAhead,
    cpu: CpuGate,
}

/// Settings for the process's [`Pager`], made by [`Pager::builder`].
///
/// # Examples
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// // A server with thousands of streams over data larger than memory:
/// // 16 background threads, 512 MiB resident ahead of all readers.
/// mapview::Pager::builder()
///     .threads(16)
///     .read_ahead_budget(512 << 20)
///     .install()?;
/// assert_eq!(mapview::Pager::current().read_ahead_budget(), 512 << 20);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PagerBuilder {
    threads: usize,
    read_ahead_budget: u64,
    cores: usize,
}

/// Threads that run the tasks of one queue.
struct Pool {
    /// The name of its threads.
    name: &'static str,
    queue: Mutex<Queue<Work>>,
    /// Signalled when a task is queued for an idle thread.
    work_queued: Condvar,
    max_threads: usize,
}

impl Pager {
    /// Settings with the defaults, to change and then
    /// [`install`](PagerBuilder::install).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mapview::Pager::builder().threads(4);
    /// # drop(builder);
    /// ```
    pub fn builder() -> PagerBuilder {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        let memory = sys::physical_memory().unwrap_or(MAX_READ_AHEAD * MEMORY_SHARE);
        PagerBuilder {
            threads: (cores * PER_CORE).min(MAX_DEFAULT),
            read_ahead_budget: (memory / MEMORY_SHARE).min(MAX_READ_AHEAD),
            cores,
        }
    }

    /// The process's pager: the one installed, or one with the defaults,
    /// started now if no stream has started it yet.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(mapview::Pager::current().threads() >= 1);
    /// ```
    pub fn current() -> &'static Pager {
        GLOBAL.get_or_init(|| Self::builder().build())
    }

    /// The most threads this pager runs jobs on at once (beside its one
    /// reclaim thread).
    ///
    /// # Examples
    ///
    /// ```
    /// let threads = mapview::Pager::current().threads();
    /// assert!((1..=32).contains(&threads));
    /// ```
    pub fn threads(&self) -> usize {
        self.jobs.max_threads
    }

    /// The bound on bytes that all streams together keep resident ahead of
    /// their readers and have not consumed yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let budget = mapview::Pager::current().read_ahead_budget();
    /// assert!(budget > 0 && budget <= 1 << 30);
    /// ```
    pub fn read_ahead_budget(&self) -> u64 {
        self.read_ahead.limit()
    }

    /// Bytes that streams keep resident ahead of their readers now: within
    /// [`read_ahead_budget`](Pager::read_ahead_budget), but for one step
    /// (1 MiB) for each stream whose reader waits when the budget is spent.
    ///
    /// # Examples
    ///
    /// ```
    /// // No stream is open: nothing is held.
    /// assert_eq!(mapview::Pager::current().read_ahead_in_use(), 0);
    /// ```
    pub fn read_ahead_in_use(&self) -> u64 {
        self.read_ahead.held()
    }

    /// Whether the pager has nothing queued and no thread at work: then no
    /// populate of its holds the process's memory-map lock.
    pub(crate) fn is_idle(&self) -> bool {
        self.jobs.queue().is_idle()
    }

    /// The budget the prefetchers of streams claim their windows from.
    pub(crate) fn read_ahead(&self) -> &ReadAhead {
        &self.read_ahead
    }

    /// The permits a pager thread takes for CPU-bound work.
    pub(crate) fn cpu(&self) -> &CpuGate {
        &self.cpu
    }

    /// Holds back every queued and new task until the guard drops, so that
    /// a test can see a stream wait for its background work: a hook for the
    /// crate's own tests, outside the documented API.
    #[doc(hidden)]
    pub fn pause(&self) -> Paused<'_> {
        Paused::new(&self.jobs)
    }

    /// Holds back the work that gives memory back (see
    /// [`reclaim`](Self::reclaim)) until the guard drops: a test hook, as
    /// [`pause`](Self::pause).
    #[doc(hidden)]
    pub fn pause_reclaims(&self) -> Paused<'_> {
        Paused::new(&self.reclaims)
    }

    /// Returns once the work that gives memory back, queued before the
    /// call, is done: a test hook, as [`pause`](Self::pause). Blocking;
    /// never while [`pause_reclaims`](Self::pause_reclaims) holds it back.
    #[doc(hidden)]
    pub fn wait_for_reclaims(&self) {
        let (done, reclaimed) = std::sync::mpsc::channel();
        // The reclaim thread runs its tasks in order: once this one runs,
        // every earlier one has.
        let marker = move || {
            let _ = done.send(());
        };
        if self.reclaim(marker).is_ok() {
            let _ = reclaimed.recv();
        }
    }

    /// Queues `work` and sees that a thread will run it. `urgent` marks the
    /// task to run before the others while it is set (its stream waits).
    /// A pager thread may run the `hint` earlier, while the task still
    /// waits in the queue: a call that starts the task's reads without
    /// waiting for them.
    ///
    /// # Errors
    ///
    /// The error of starting a thread, when no thread of the pager is left
    /// to run the task. The task is dropped unrun then.
    pub(crate) fn submit(
        &self,
        urgent: Arc<AtomicBool>,
        hint: Option<Work>,
        work: Work,
    ) -> io::Result<()> {
        self.jobs.submit(Task { work, urgent, hint })
    }

    /// Runs `work`, which gives memory back (pages released behind a
    /// cursor, a region unmapped), on the pager's reclaim thread, which
    /// never waits behind the jobs. Fails if that thread could not start.
    pub(crate) fn reclaim(&self, work: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let (urgent, hint) = (Arc::default(), None);
        let work: Work = Box::new(work);
        self.reclaims.submit(Task { work, urgent, hint })
    }
}

/// Holds the tasks of one of the pager's pools back while alive, from
/// [`Pager::pause`] or [`Pager::pause_reclaims`].
#[doc(hidden)]
pub struct Paused<'a>(&'a Pool);

impl<'a> Paused<'a> {
    fn new(pool: &'a Pool) -> Self {
        pool.queue().pause();
        Paused(pool)
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if self.0.queue().resume() {
            self.0.work_queued.notify_all();
        }
    }
}

impl fmt::Debug for Paused<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Paused").field(&self.0.name).finish()
    }
}

impl PagerBuilder {
    /// The most threads the pager runs jobs on at once (at least 1; its
    /// reclaim thread comes on top). The default is eight per core, at most
    /// 32.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = mapview::Pager::builder().threads(16);
    /// # drop(builder);
    /// ```
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The bound on bytes that all streams together keep resident ahead of
    /// their readers. The default is a sixteenth of the machine's memory,
    /// at most 1 GiB. Each stream's window is at most an equal share of it,
    /// so windows shrink as streams open and grow back as they close; a
    /// reader that waits gets at least one step (1 MiB) even when the
    /// budget is spent.
    ///
    /// # Examples
    ///
    /// ```
    /// // 10,000 streams over data larger than memory: 256 MiB ahead in all.
    /// let builder = mapview::Pager::builder().read_ahead_budget(256 << 20);
    /// # drop(builder);
    /// ```
    pub fn read_ahead_budget(mut self, bytes: u64) -> Self {
        self.read_ahead_budget = bytes;
        self
    }

    /// Makes this the process's pager.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` if the process already has one: installed before, or
    /// started by a stream. Install it first thing in `main`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// mapview::Pager::builder().threads(2).install()?;
    /// // A second one is refused: the first is in use.
    /// let again = mapview::Pager::builder().install();
    /// assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
    /// # Ok(())
    /// # }
    /// ```
    pub fn install(self) -> io::Result<()> {
        GLOBAL.set(self.build()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the process's pager is already set up: install it before the first stream",
            )
        })
    }

    fn build(self) -> Pager {
        Pager {
            jobs: Arc::new(Pool::new("mapview-pager", self.threads)),
            reclaims: Arc::new(Pool::new("mapview-reclaim", 1)),
            read_ahead: ReadAhead::new(self.read_ahead_budget),
            cpu: CpuGate::new(self.cores * CPU_PER_CORE),
        }
    }
}

impl Pool {
    fn new(name: &'static str, max_threads: usize) -> Self {
        Self {
            name,
            queue: Mutex::new(Queue::new(max_threads)),
            work_queued: Condvar::new(),
            max_threads,
        }
    }

    /// Queues `task` and sees that a thread will run it (see
    /// [`Pager::submit`]).
    fn submit(self: &Arc<Self>, task: Task<Work>) -> io::Result<()> {
        let wake = self.queue().push(task);
        match wake {
            Wake::Notify => self.work_queued.notify_one(),
            Wake::Wait => {}
            Wake::Spawn => {
                let pool = Arc::clone(self);
                let started = thread::Builder::new()
                    .name(self.name.into())
                    .spawn(move || pool.run());
                if let Err(e) = started {
                    return self.failed_to_start(e);
                }
            }
        }
        Ok(())
    }

    fn queue(&self) -> MutexGuard<'_, Queue<Work>> {
        // Tasks run outside the lock, so it is never poisoned by one; recover
        // the queue anyway.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pager thread: runs tasks until none comes for [`KEEP_ALIVE`].
    fn run(&self) {
        // The whole life of the thread: it is the pager's own.
        let _background = sys::BackgroundScheduling::enter(POLICY);
        let mut queue = self.queue();
        loop {
            if let Some(Task { work, hint, .. }) = queue.pop() {
                let hints = queue.take_hints(LOOKAHEAD);
                drop(queue);
                // Nothing is dropped under the lock: dropping a task can drop
                // the last handle to a region, whose teardown submits a task.
                // The task's own hint is moot now (its work starts the same
                // reads).
                drop(hint);
                // A task that panics must not take the thread with it: the
                // queue counts this thread as alive.
                for work in hints.into_iter().chain([work]) {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
                }
                queue = self.queue();
                continue;
            }
            queue.idle();
            let (guard, wait) = self
                .work_queued
                .wait_timeout(queue, KEEP_ALIVE)
                .unwrap_or_else(|e| e.into_inner());
            queue = guard;
            queue.busy();
            if wait.timed_out() && queue.len() == 0 {
                queue.leave();
                return;
            }
        }
    }

    /// A new thread did not start. If other threads are left, they will get
    /// to the task; if none is, the queued tasks are dropped unrun (their
    /// owners see that) and the error is returned.
    fn failed_to_start(&self, error: io::Error) -> io::Result<()> {
        let stranded: Vec<Task<Work>> = {
            let mut queue = self.queue();
            queue.leave();
            if queue.threads() > 0 {
                return Ok(());
            }
            std::iter::from_fn(|| queue.pop()).collect()
        };
        drop(stranded);
        Err(error)
    }
}

impl fmt::Debug for Pager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queue = self.jobs.queue();
        f.debug_struct("Pager")
            .field("max_threads", &self.jobs.max_threads)
            .field("read_ahead", &self.read_ahead)
            .field("threads", &queue.threads())
            .field("queued", &queue.len())
            .finish()
    }
}
