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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One unit of background work and the flag that marks it urgent.
pub(crate) struct Task<W> {
    pub(crate) work: W,
    pub(crate) urgent: Arc<AtomicBool>,
}

/// Queued tasks and the count of threads, busy and idle.
pub(crate) struct Queue<W> {
    tasks: VecDeque<Task<W>>,
    threads: usize,
    idle: usize,
    max_threads: usize,
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
            threads: 0,
            idle: 0,
            max_threads: max_threads.max(1),
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

    /// The task to run next: the oldest urgent one, else the oldest.
    pub(crate) fn pop(&mut self) -> Option<Task<W>> {
        let urgent = self
            .tasks
            .iter()
            .position(|task| task.urgent.load(Ordering::Acquire));
        match urgent {
            Some(at) => self.tasks.remove(at),
            None => self.tasks.pop_front(),
        }
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
