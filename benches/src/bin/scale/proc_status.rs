//! What `/proc` tells of this process and of the machine.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the [`Sampler`] reads `/proc/self/status`.
const EVERY: Duration = Duration::from_millis(5);

/// The machine's memory in bytes (`MemTotal`).
pub fn memory() -> io::Result<u64> {
    Ok(field(&std::fs::read_to_string("/proc/meminfo")?, "MemTotal")? << 10)
}

/// The 1, 5 and 15 minute load averages, as the kernel prints them.
pub fn load_average() -> io::Result<String> {
    let text = std::fs::read_to_string("/proc/loadavg")?;
    Ok(text
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" "))
}

/// The number in a `Key:   value [kB]` line of a `/proc` file.
fn field(text: &str, key: &str) -> io::Result<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no {key} in /proc")))
}

/// The most this process used while a [`Sampler`] ran.
#[derive(Debug, Default, Clone, Copy)]
pub struct Peaks {
    /// Threads of the process (`Threads`), sampled.
    pub threads: u64,
    /// Resident memory in bytes (`VmHWM`, the kernel's own peak).
    pub rss: u64,
    /// Page tables in bytes (`VmPTE`), sampled.
    pub page_tables: u64,
}

impl Peaks {
    fn sample(&mut self) -> io::Result<()> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        self.threads = self.threads.max(field(&status, "Threads")?);
        self.page_tables = self.page_tables.max(field(&status, "VmPTE")? << 10);
        self.rss = field(&status, "VmHWM")? << 10;
        Ok(())
    }
}

/// A thread that samples `/proc/self/status` every [`EVERY`] until it is
/// stopped. (It counts itself among the threads.)
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<io::Result<Peaks>>,
}

impl Sampler {
    pub fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let mut peaks = Peaks::default();
                while !stop.load(Ordering::Relaxed) {
                    peaks.sample()?;
                    std::thread::sleep(EVERY);
                }
                peaks.sample()?;
                Ok(peaks)
            }
        });
        Sampler { stop, thread }
    }

    /// Stops the sampling, and returns the peaks it saw.
    pub fn stop(self) -> io::Result<Peaks> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| io::Error::other("the sampler panicked"))?
    }
}
