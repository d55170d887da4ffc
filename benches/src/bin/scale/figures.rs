//! What one run measured, and how a child hands it to the parent: one
//! line of numbers on its standard output.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub bytes: u64,
    pub seconds: f64,
    /// The longest single poll of any task.
    pub longest_poll: Duration,
    /// Polls of all tasks that took 10 ms or longer.
    pub slow_polls: u64,
    /// Of those, the polls during which the runtime's thread slept.
    pub slow_blocked: u64,
    /// Of those, the polls during which it was preempted and never slept.
    pub slow_preempted: u64,
    /// The slow polls' wall time, and the CPU time the thread had in them.
    pub slow_wall: Duration,
    pub slow_cpu: Duration,
    pub peak_threads: u64,
    /// Bytes.
    pub peak_rss: u64,
    /// Bytes.
    pub peak_page_tables: u64,
    /// Major page faults of the runtime's thread while it ran the tasks.
    pub major_faults: i64,
    /// Of those, the faults within the tasks' polls: the times a poll
    /// waited on the disk for a page. The others were the runtime's own
    /// (its code paged out under the streams' memory pressure, say).
    pub poll_major_faults: i64,
}

impl Figures {
    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e6
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {} {} {} {} {} {} {} {}",
            self.bytes,
            self.seconds,
            self.longest_poll.as_nanos(),
            self.slow_polls,
            self.slow_blocked,
            self.slow_preempted,
            self.slow_wall.as_nanos(),
            self.slow_cpu.as_nanos(),
            self.peak_threads,
            self.peak_rss,
            self.peak_page_tables,
            self.major_faults,
            self.poll_major_faults
        )
    }
}

impl FromStr for Figures {
    type Err = io::Error;

    fn from_str(line: &str) -> io::Result<Figures> {
        let bad = || io::Error::other(format!("a run reported {line:?}"));
        let numbers: Vec<f64> = line
            .split_whitespace()
            .map(|number| number.parse().map_err(|_| bad()))
            .collect::<io::Result<_>>()?;
        let [bytes, seconds, longest_poll, slow_polls, slow_blocked, slow_preempted, slow_wall, slow_cpu, threads, rss, page_tables, major_faults, poll_major_faults] =
            numbers[..]
        else {
            return Err(bad());
        };
        Ok(Figures {
            bytes: bytes as u64,
            seconds,
            longest_poll: Duration::from_nanos(longest_poll as u64),
            slow_polls: slow_polls as u64,
            slow_blocked: slow_blocked as u64,
            slow_preempted: slow_preempted as u64,
            slow_wall: Duration::from_nanos(slow_wall as u64),
            slow_cpu: Duration::from_nanos(slow_cpu as u64),
            peak_threads: threads as u64,
            peak_rss: rss as u64,
            peak_page_tables: page_tables as u64,
            major_faults: major_faults as i64,
            poll_major_faults: poll_major_faults as i64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_survive_the_line_from_child_to_parent() {
        let sent = Figures {
            bytes: 2 << 30,
            seconds: 2.5,
            longest_poll: Duration::from_micros(10_724),
            slow_polls: 3,
            slow_blocked: 1,
            slow_preempted: 1,
            slow_wall: Duration::from_micros(40_123),
            slow_cpu: Duration::from_micros(12_456),
            peak_threads: 514,
            peak_rss: 138 << 20,
            peak_page_tables: 4 << 20,
            major_faults: 7,
            poll_major_faults: 2,
        };
        let received: Figures = sent.to_string().parse().unwrap();
        assert_eq!(received.to_string(), sent.to_string());
        assert!("1 2 3".parse::<Figures>().is_err());
    }
}
