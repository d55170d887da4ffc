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
    /// The thread's major page faults within the polls, slow or not: the
    /// times a poll waited on the disk for a page.
    pub major_faults: i64,
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
            major_faults: self.major_faults + other.major_faults,
        }
    }

    fn record(&mut self, poll: Duration, before: Usage, after: Usage) {
        self.longest = self.longest.max(poll);
        self.major_faults += after.major_faults - before.major_faults;
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

/// The calling thread's CPU time, context switches and major faults so
/// far.
#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu: Duration,
    voluntary: i64,
    involuntary: i64,
    major_faults: i64,
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
            major_faults: usage.ru_majflt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(cpu_ms: u64, voluntary: i64, involuntary: i64) -> Usage {
        Usage {
            cpu: Duration::from_millis(cpu_ms),
            voluntary,
            involuntary,
            major_faults: voluntary,
        }
    }

    #[test]
    fn slow_polls_are_told_apart_by_the_switches_the_thread_made() {
        let mut times = PollTimes::default();
        let ms = Duration::from_millis;
        // Fast: counted in the longest only.
        times.record(ms(3), usage(0, 0, 0), usage(3, 5, 5));
        // Slept (a voluntary switch wins over an involuntary one).
        times.record(ms(20), usage(10, 1, 1), usage(12, 2, 2));
        // Preempted, never slept.
        times.record(ms(15), usage(12, 2, 2), usage(14, 2, 3));
        // On the CPU throughout (or stolen by the hypervisor).
        times.record(ms(11), usage(14, 2, 3), usage(25, 2, 3));
        assert_eq!(times.longest, ms(20));
        assert_eq!(times.slow, 3);
        assert_eq!(times.slow_blocked, 1);
        assert_eq!(times.slow_preempted, 1);
        assert_eq!(times.slow_wall, ms(46));
        assert_eq!(times.slow_cpu, ms(15));
        // Faults are counted in every poll, slow or not (here one per
        // voluntary switch): 5 + 1 + 0 + 0.
        assert_eq!(times.major_faults, 6);
        let both = times.add(times);
        assert_eq!(
            (
                both.slow,
                both.slow_blocked,
                both.slow_cpu,
                both.major_faults
            ),
            (6, 2, ms(30), 12)
        );
    }
}
