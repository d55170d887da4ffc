//! How fast and how soon does a tailer see appended lines? Two workloads,
//! for mapview's `Tail` and for coreutils `tail -F` writing to a pipe:
//!
//! - catch-up: a file of 2 million 100-byte lines (200 MB) is already there
//!   when the tailer starts at its beginning: lines/s until the end marker;
//! - live: a writer thread appends 100-byte lines as fast as it can for a
//!   few seconds, each stamped with the time it was written: lines/s, and
//!   for every line how long after the write it was read (p50, p99, max).
//!
//! `cargo run --release -p mapview-benches --bin tail_bench -- [SECONDS]` (default 3).

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncBufReadExt;

const LINE: usize = 100;
const END: &str = "END";

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// How long a writer writes.
#[derive(Clone, Copy)]
enum Until {
    Seconds(f64),
    Lines(u64),
}

/// Appends stamped 100-byte lines to `path` (one `write` each when `live`,
/// in 1 MiB blocks otherwise), then the end marker. Returns how many lines.
fn write_lines(path: &Path, until: Until, live: bool) -> io::Result<u64> {
    let file = std::fs::OpenOptions::new().append(true).open(path)?;
    let mut out = io::BufWriter::with_capacity(if live { 0 } else { 1 << 20 }, file);
    let deadline = match until {
        Until::Seconds(s) => now_nanos() + (s * 1e9) as u128,
        Until::Lines(_) => u128::MAX,
    };
    let padding = "x".repeat(LINE - 20 - 1 - 12 - 1 - 1);
    let mut count = 0;
    loop {
        let now = now_nanos();
        if now >= deadline || matches!(until, Until::Lines(n) if count == n) {
            out.write_all(format!("{END}\n").as_bytes())?;
            out.flush()?;
            return Ok(count);
        }
        // One `write` per line when live (the buffer has no capacity then).
        out.write_all(format!("{now:020} {count:012} {padding}\n").as_bytes())?;
        count += 1;
    }
}

/// Runs [`write_lines`] on a thread of its own.
fn start_writer(path: PathBuf, until: Until) -> JoinHandle<io::Result<u64>> {
    std::thread::spawn(move || write_lines(&path, until, true))
}

/// What a reader saw: how many lines, over how long, and each one's latency.
#[derive(Default)]
struct Seen {
    lines: u64,
    start: u128,
    end: u128,
    latency: Vec<Duration>,
}

impl Seen {
    /// Records one line; returns `false` at the end marker.
    fn record(&mut self, line: &str) -> io::Result<bool> {
        if line == END {
            return Ok(false);
        }
        let stamp: u128 = line.get(..20).and_then(|s| s.parse().ok()).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad line {line:?}"))
        })?;
        self.end = now_nanos();
        self.latency
            .push(Duration::from_nanos(self.end.saturating_sub(stamp) as u64));
        self.lines += 1;
        Ok(true)
    }

    fn lines_per_second(&self) -> f64 {
        self.lines as f64 / ((self.end - self.start) as f64 / 1e9)
    }

    /// Prints a row: catch-up lines/s from `catch_up`, the rest from `self`.
    fn print(mut self, name: &str, catch_up: &Seen) {
        self.latency.sort();
        let ms = |p: f64| {
            let i = ((self.latency.len() - 1) as f64 * p).round() as usize;
            self.latency[i].as_secs_f64() * 1000.0
        };
        println!(
            "{:<20} {:>16.0} {:>12.0} {:>8.3} {:>8.3} {:>8.3}",
            name,
            catch_up.lines_per_second(),
            self.lines_per_second(),
            ms(0.5),
            ms(0.99),
            ms(1.0)
        );
    }
}

/// Waits for the writer (if the workload had one) and checks that the reader
/// saw every line it wrote, once.
fn finish(
    seen: Seen,
    writer: Option<JoinHandle<io::Result<u64>>>,
    prewritten: Option<u64>,
    name: &str,
) -> io::Result<Seen> {
    let written = match writer {
        Some(writer) => writer
            .join()
            .map_err(|_| io::Error::other("writer panicked"))??,
        None => prewritten.unwrap_or_default(),
    };
    if seen.lines != written {
        return Err(io::Error::other(format!(
            "{name} read {} lines of {written}",
            seen.lines
        )));
    }
    Ok(seen)
}

/// Runs one workload with mapview's Tail: `until` lines are written live,
/// or (`prewritten`) were written before it started.
async fn with_mapview(path: &Path, until: Until, prewritten: Option<u64>) -> io::Result<Seen> {
    let start = if prewritten.is_some() {
        io::SeekFrom::Start(0)
    } else {
        io::SeekFrom::End(0)
    };
    let mut lines = mapview::Tail::follow(path, start)?.lines();
    let mut seen = Seen {
        start: now_nanos(),
        ..Seen::default()
    };
    let writer = prewritten
        .is_none()
        .then(|| start_writer(path.to_path_buf(), until));
    while let Some(line) = lines.next_line().await? {
        if !seen.record(&line)? {
            break;
        }
    }
    finish(seen, writer, prewritten, "mapview Tail")
}

/// The same with coreutils `tail -F` writing to a pipe.
fn with_coreutils(path: &Path, until: Until, prewritten: Option<u64>) -> io::Result<Seen> {
    let from = if prewritten.is_some() { "+1" } else { "0" };
    let mut tail = Command::new("tail")
        .args(["-F", "-n", from, "-s", "0.01"])
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut seen = Seen {
        start: now_nanos(),
        ..Seen::default()
    };
    let writer = prewritten.is_none().then(|| {
        std::thread::sleep(Duration::from_millis(300)); // let tail open the file
        seen.start = now_nanos();
        start_writer(path.to_path_buf(), until)
    });
    let stdout = tail.stdout.take().expect("piped stdout");
    for line in io::BufReader::with_capacity(1 << 16, stdout).lines() {
        if !seen.record(&line?)? {
            break;
        }
    }
    tail.kill()?;
    tail.wait()?;
    finish(seen, writer, prewritten, "coreutils tail -F")
}

fn main() -> io::Result<()> {
    let seconds: f64 = std::env::args()
        .nth(1)
        .map_or(Ok(3.0), |a| a.parse())
        .map_err(io::Error::other)?;
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let fresh = |name: &str| -> io::Result<PathBuf> {
        let path = dir.path().join(name);
        std::fs::write(&path, b"")?;
        Ok(path)
    };
    let catch_up_lines = 2_000_000;
    let prewritten = |name: &str| -> io::Result<PathBuf> {
        let path = fresh(name)?;
        write_lines(&path, Until::Lines(catch_up_lines), false)?;
        Ok(path)
    };
    let live = Until::Seconds(seconds);

    let catch_up = runtime.block_on(with_mapview(
        &prewritten("m1.log")?,
        live,
        Some(catch_up_lines),
    ))?;
    let mapview_live = runtime.block_on(with_mapview(&fresh("m2.log")?, live, None))?;
    let tail_catch_up = with_coreutils(&prewritten("c1.log")?, live, Some(catch_up_lines))?;
    let tail_live = with_coreutils(&fresh("c2.log")?, live, None)?;

    println!("100-byte lines; live: {seconds} s of appends as fast as one thread writes\n");
    println!(
        "{:<20} {:>16} {:>12} {:>8} {:>8} {:>8}",
        "tailer", "catch-up lines/s", "live lines/s", "p50 ms", "p99 ms", "max ms"
    );
    mapview_live.print("mapview Tail", &catch_up);
    tail_live.print("coreutils tail -F", &tail_catch_up);
    Ok(())
}
