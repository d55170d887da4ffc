//! The pager's scheduling policy, free of threads and clocks so that it can
//! be tested deterministically: which task runs next, and when to start
//! another thread.
//!
//! - **Fair.** Each stream has at most one job queued or running at a time
//!   (its `JobSlot` sees to that), so first in, first out is round-robin
//!   across streams.
//! - **Waiting readers first.** A task whose stream is parked on it (a
//!   reader or writer that returned `Pending` for it) is *urgent*: it runs
//!   before any task that only works ahead, oldest urgent one first.
//! - **Bounded.** A new thread starts only when a task is queued, no thread
//!   is idle, and fewer than the maximum run.
//! - **I/O ahead of the threads.** A task may carry a *hint*: a call that
//!   starts its reads without waiting for them (`MADV_WILLNEED`). A thread
//!   that takes a task also takes the hints of the next few queued ones, so
//!   the disk has the reads of many streams in flight while a bounded
//!   number of threads wait on a few.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Room for queued tasks that the queue keeps when it runs empty.
const SPARE: usize = 64;

/// One unit of background work, the flag that marks it urgent, and an
/// optional hint that starts its I/O early.
pub(crate) struct Task<W> {
    pub(crate) work: W,
    pub(crate) urgent: Arc<AtomicBool>,
    pub(crate) hint: Option<W>,
}

/// Queued tasks and the count of threads, busy and idle.
pub(crate) struct Queue<W> {
    tasks: VecDeque<Task<W>>,
    /// How many tasks at the front have had their hints taken: the next
    /// [`take_hints`](Queue::take_hints) starts after them, so that a
    /// thread does not walk a thousand spent tasks under the lock.
    hinted: usize,
    threads: usize,
    idle: usize,
    max_threads: usize,
    /// While above 0, no task is handed out (a test hook: see
    /// `Pager::pause`).
    paused: usize,
}

/// What the caller of [`Queue::push`] should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Start a new thread: none is idle and the bound allows one more.
    Spawn,
    /// Signal an idle thread.
    Notify,
    /// Every thread is busy and the bound is reached: the task waits its turn.
    Wait,
}

impl<W> Queue<W> {
    pub(crate) fn new(max_threads: usize) -> Self {
        Self {
            tasks: VecDeque::new(),
            hinted: 0,
            threads: 0,
            idle: 0,
            max_threads: max_threads.max(1),
            paused: 0,
        }
    }

    /// Queues `task` and says how to get a thread to it. After
    /// [`Wake::Spawn`] the caller starts a thread, which counts from now on.
    pub(crate) fn push(&mut self, task: Task<W>) -> Wake {
        self.tasks.push_back(task);
        if self.idle > 0 {
            Wake::Notify
        } else if self.threads < self.max_threads {
            self.threads += 1;
            Wake::Spawn
        } else {
            Wake::Wait
        }
    }

    /// The task to run next: the oldest urgent one, else the oldest. None
    /// while paused.
    pub(crate) fn pop(&mut self) -> Option<Task<W>> {
        if self.paused > 0 {
            return None;
        }
        let urgent = self
            .tasks
            .iter()
            .position(|task| task.urgent.load(Ordering::Acquire));
        let at = urgent.unwrap_or(0);
        let task = self.tasks.remove(at);
        if at < self.hinted {
            self.hinted -= 1;
        }
        if self.tasks.is_empty() {
            // A burst (thousands of streams dropped at once) leaves no
            // backlog's worth of memory behind.
            self.tasks.shrink_to(SPARE);
        }
        task
    }

    /// The hints of the first `n` queued tasks that still have one, each
    /// taken once.
    pub(crate) fn take_hints(&mut self, n: usize) -> Vec<W> {
        if self.paused > 0 {
            return Vec::new();
        }
        let end = n.min(self.tasks.len());
        let start = self.hinted.min(end);
        self.hinted = self.hinted.max(end);
        self.tasks
            .range_mut(start..end)
            .filter_map(|task| task.hint.take())
            .collect()
    }

    /// Holds back every task until as many `resume` calls.
    pub(crate) fn pause(&mut self) {
        self.paused += 1;
    }

    /// Undoes one `pause`. Returns whether tasks flow again.
    pub(crate) fn resume(&mut self) -> bool {
        self.paused -= 1;
        self.paused == 0
    }

    /// A thread found nothing to do and is about to wait.
    pub(crate) fn idle(&mut self) {
        self.idle += 1;
    }

    /// A waiting thread woke up (to work or to leave).
    pub(crate) fn busy(&mut self) {
        self.idle -= 1;
    }

    /// A thread leaves: it waited its keep-alive out, or failed to start.
    pub(crate) fn leave(&mut self) {
        self.threads -= 1;
    }

    /// Whether nothing is queued and no thread is at work.
    pub(crate) fn is_idle(&self) -> bool {
        self.tasks.is_empty() && self.idle == self.threads
    }

    /// Threads started and not yet gone.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Tasks waiting for a thread.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &'static str) -> (Task<&'static str>, Arc<AtomicBool>) {
        let urgent = Arc::new(AtomicBool::new(false));
        let task = Task {
            work: name,
            urgent: Arc::clone(&urgent),
            hint: Some(name),
        };
        (task, urgent)
    }

    fn drain(queue: &mut Queue<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| queue.pop().map(|task| task.work)).collect()
    }

    #[test]
    fn tasks_run_first_in_first_out() {
        let mut queue = Queue::new(4);
        for name in ["a", "b", "c"] {
            queue.push(task(name).0);
        }
        assert_eq!(drain(&mut queue), ["a", "b", "c"]);
    }

    #[test]
    fn a_task_whose_stream_waits_runs_first() {
        let mut queue = Queue::new(4);
        let (a, _) = task("a");
        let (b, b_waits) = task("b");
        let (c, c_waits) = task("c");
        queue.push(a);
        queue.push(b);
        queue.push(c);
        // The stream of `c` parks first, then that of `b`: urgent ones run
        // oldest first, then the rest.
        c_waits.store(true, Ordering::Release);
        b_waits.store(true, Ordering::Release);
        assert_eq!(drain(&mut queue), ["b", "c", "a"]);
    }

    #[test]
    fn the_hints_of_the_next_tasks_are_taken_once() {
        let mut queue = Queue::new(2);
        for name in ["a", "b", "c", "d"] {
            queue.push(task(name).0);
        }
        assert_eq!(queue.pop().map(|task| task.work), Some("a"));
        assert_eq!(queue.take_hints(2), ["b", "c"]);
        assert_eq!(queue.take_hints(2), Vec::<&str>::new());
        assert_eq!(queue.take_hints(3), ["d"]);
        // The tasks themselves are still there, in order.
        assert_eq!(drain(&mut queue), ["b", "c", "d"]);
    }

    #[test]
    fn hints_are_taken_once_whatever_runs_in_between() {
        let mut queue = Queue::new(2);
        let (a, b, c) = (task("a"), task("b"), task("c"));
        queue.push(a.0);
        queue.push(b.0);
        queue.push(c.0);
        queue.push(task("d").0);
        assert_eq!(queue.take_hints(2), ["a", "b"]);
        // An urgent task from the middle of the hinted ones runs first.
        b.1.store(true, Ordering::Release);
        assert_eq!(queue.pop().map(|task| task.work), Some("b"));
        // "a" is still hinted, "c" and "d" are not yet.
        assert_eq!(queue.take_hints(2), ["c"]);
        assert_eq!(queue.take_hints(3), ["d"]);
        // A task from past the hinted ones: the count stays.
        c.1.store(true, Ordering::Release);
        assert_eq!(queue.pop().map(|task| task.work), Some("c"));
        queue.push(task("e").0);
        assert_eq!(queue.take_hints(3), ["e"]);
        assert_eq!(drain(&mut queue), ["a", "d", "e"]);
        // Emptied, the queue hints from its front again.
        queue.push(task("f").0);
        assert_eq!(queue.take_hints(1), ["f"]);
    }

    #[test]
    fn a_paused_queue_hands_out_nothing_until_resumed() {
        let mut queue = Queue::new(2);
        queue.push(task("a").0);
        queue.pause();
        queue.pause();
        assert!(queue.pop().is_none());
        assert!(!queue.resume());
        assert!(queue.pop().is_none());
        assert!(queue.resume());
        assert_eq!(drain(&mut queue), ["a"]);
    }

    #[test]
    fn threads_start_only_up_to_the_bound() {
        let mut queue = Queue::new(3);
        let wakes: Vec<Wake> = (0..2000).map(|_| queue.push(task("x").0)).collect();
        assert_eq!(&wakes[..3], [Wake::Spawn; 3]);
        assert!(wakes[3..].iter().all(|&wake| wake == Wake::Wait));
        assert_eq!(queue.threads(), 3);
        assert_eq!(queue.len(), 2000);
    }

    #[test]
    fn an_idle_thread_is_notified_before_another_starts() {
        let mut queue = Queue::new(3);
        assert_eq!(queue.push(task("a").0), Wake::Spawn);
        queue.pop();
        queue.idle();
        assert_eq!(queue.push(task("b").0), Wake::Notify);
        queue.busy();
        assert_eq!(queue.push(task("c").0), Wake::Spawn);
        assert_eq!(queue.threads(), 2);
    }

    #[test]
    fn the_queue_is_idle_when_nothing_waits_and_no_thread_works() {
        let mut queue = Queue::new(2);
        assert!(queue.is_idle());
        queue.push(task("a").0);
        assert!(!queue.is_idle());
        queue.pop();
        assert!(!queue.is_idle()); // its thread runs it
        queue.idle();
        assert!(queue.is_idle());
    }

    #[test]
    fn a_thread_that_leaves_makes_room_for_a_new_one() {
        let mut queue = Queue::new(1);
        assert_eq!(queue.push(task("a").0), Wake::Spawn);
        assert_eq!(queue.push(task("b").0), Wake::Wait);
        queue.leave();
        assert_eq!(queue.push(task("c").0), Wake::Spawn);
    }

    #[test]
    fn a_bound_of_zero_still_allows_one_thread() {
        let mut queue = Queue::new(0);
        assert_eq!(queue.push(task("a").0), Wake::Spawn);
        assert_eq!(queue.push(task("b").0), Wake::Wait);
    }
}
