//! Timing each poll of a task: how long it kept the runtime's thread.

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
}

impl PollTimes {
    /// The polls of both together.
    pub fn add(self, other: PollTimes) -> PollTimes {
        PollTimes {
            longest: self.longest.max(other.longest),
            slow: self.slow + other.slow,
        }
    }

    fn record(&mut self, poll: Duration) {
        self.longest = self.longest.max(poll);
        self.slow += u64::from(poll >= SLOW);
    }
}

/// Runs `work` to completion, and returns its output with the times of its
/// polls.
pub async fn timed<F: Future>(work: F) -> (F::Output, PollTimes) {
    let mut work = std::pin::pin!(work);
    let mut times = PollTimes::default();
    let output = std::future::poll_fn(|cx| {
        let polled = Instant::now();
        let poll = work.as_mut().poll(cx);
        times.record(polled.elapsed());
        poll
    })
    .await;
    (output, times)
}
