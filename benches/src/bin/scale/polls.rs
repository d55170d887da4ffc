//! Timing each poll of a task: how long it kept the runtime's thread, and
//! for the slow ones, what the thread did meanwhile.

use std::future::Future;
use std::time::{Duration, Instant};

/// A poll at least this long counts as slow: long enough to be felt as
/// latency by every other task on the thread.
const SLOW: Duration = Duration::from_millis(10);

/// What the polls of one or more tasks took.
#[derive(Debug, Default, Clone, Copy)]
pub struct PollTimes {
    /// The longest single poll.
    pub longest: Duration,
    /// How many polls took [`SLOW`] or longer.
    pub slow: u64,
    /// Slow polls during which the thread slept (a voluntary context
    /// switch): it waited in the kernel, on the disk or a lock.
    pub slow_blocked: u64,
    /// Slow polls during which the thread never slept but was preempted:
    /// runnable, it waited for a CPU.
    pub slow_preempted: u64,
    /// The wall time of the slow polls.
    pub slow_wall: Duration,
    /// The CPU time the thread had during the slow polls (time the
    /// hypervisor stole from the VM counts as neither).
    pub slow_cpu: Duration,
}

impl PollTimes {
    /// The polls of both together.
    pub fn add(self, other: PollTimes) -> PollTimes {
        PollTimes {
            longest: self.longest.max(other.longest),
            slow: self.slow + other.slow,
            slow_blocked: self.slow_blocked + other.slow_blocked,
            slow_preempted: self.slow_preempted + other.slow_preempted,
            slow_wall: self.slow_wall + other.slow_wall,
            slow_cpu: self.slow_cpu + other.slow_cpu,
        }
    }

    fn record(&mut self, poll: Duration, before: Usage, after: Usage) {
        self.longest = self.longest.max(poll);
        if poll < SLOW {
            return;
        }
        self.slow += 1;
        if after.voluntary > before.voluntary {
            self.slow_blocked += 1;
        } else if after.involuntary > before.involuntary {
            self.slow_preempted += 1;
        }
        self.slow_wall += poll;
        self.slow_cpu += after.cpu.saturating_sub(before.cpu);
    }
}

/// Runs `work` to completion, and returns its output with the times of its
/// polls.
pub async fn timed<F: Future>(work: F) -> (F::Output, PollTimes) {
    let mut work = std::pin::pin!(work);
    let mut times = PollTimes::default();
    let output = std::future::poll_fn(|cx| {
        let before = Usage::of_this_thread();
        let polled = Instant::now();
        let poll = work.as_mut().poll(cx);
        let took = polled.elapsed();
        times.record(took, before, Usage::of_this_thread());
        poll
    })
    .await;
    (output, times)
}

/// The calling thread's CPU time and context switches so far.
#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu: Duration,
    voluntary: i64,
    involuntary: i64,
}

impl Usage {
    fn of_this_thread() -> Usage {
        // SAFETY: getrusage fills the zeroed struct it is given;
        // RUSAGE_THREAD cannot fail for the calling thread.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
            usage
        };
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        Usage {
            cpu: time(usage.ru_utime) + time(usage.ru_stime),
            voluntary: usage.ru_nvcsw,
            involuntary: usage.ru_nivcsw,
        }
    }
}
