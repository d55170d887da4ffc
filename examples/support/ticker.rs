//! Measures how well a `current_thread` runtime stays responsive while a
//! task does I/O: a ticker task asks to wake every millisecond and records
//! how late each wake-up was.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one measured run did.
pub struct Run {
    pub bytes: u64,
    pub seconds: f64,
    /// Major page faults (waits on the disk) of the runtime's thread.
    pub major_faults: i64,
    /// The longest single poll of the work: how long the work itself kept
    /// the runtime's thread without yielding.
    pub longest_poll: Duration,
    /// How late each tick was, sorted.
    pub lateness: Vec<Duration>,
}

/// Major page faults taken by the calling thread so far.
fn major_faults_of_this_thread() -> i64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage.ru_majflt
    }
}

/// Runs `work` (which returns the bytes it moved) on the current runtime
/// while a ticker task records its lateness.
async fn measure<F>(work: F) -> std::io::Result<Run>
where
    F: Future<Output = std::io::Result<u64>>,
{
    // (lateness of each tick so far, deadline of the tick now due)
    let ticks = Arc::new(Mutex::new((Vec::new(), tokio::time::Instant::now())));
    let ticker = tokio::spawn({
        let ticks = Arc::clone(&ticks);
        async move {
            loop {
                let deadline = tokio::time::Instant::now() + Duration::from_millis(1);
                ticks.lock().unwrap().1 = deadline;
                tokio::time::sleep_until(deadline).await;
                let late = tokio::time::Instant::now() - deadline;
                ticks.lock().unwrap().0.push(late);
            }
        }
    });
    tokio::task::yield_now().await; // let the ticker start
    let start = Instant::now();
    let faults_before = major_faults_of_this_thread();
    let mut work = std::pin::pin!(work);
    let mut longest_poll = Duration::ZERO;
    let bytes = std::future::poll_fn(|cx| {
        let polled = Instant::now();
        let poll = work.as_mut().poll(cx);
        longest_poll = longest_poll.max(polled.elapsed());
        poll
    })
    .await?;
    let seconds = start.elapsed().as_secs_f64();
    let major_faults = major_faults_of_this_thread() - faults_before;
    ticker.abort();
    let (mut lateness, due) = ticks.lock().unwrap().clone();
    // The tick due now has not run yet: if the work never yielded, it has
    // waited for all of it. Count it too.
    lateness.push(tokio::time::Instant::now().saturating_duration_since(due));
    lateness.sort();
    Ok(Run {
        bytes,
        seconds,
        major_faults,
        longest_poll,
        lateness,
    })
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The run with the median throughput.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| (a.bytes as f64 / a.seconds).total_cmp(&(b.bytes as f64 / b.seconds)));
    runs.swap_remove(runs.len() / 2)
}

/// Runs each of `names` once a round for `MAPVIEW_ROUNDS` rounds (default
/// 3), interleaved, on a `current_thread` runtime under [`measure`]; `work`
/// makes the future for a name (after any preparation, such as evicting
/// pages) and returns the bytes it moved, which must be `bytes`. Prints a
/// table of the median run of each.
pub fn compare<W, F>(names: &[&'static str], bytes: u64, mut work: W) -> std::io::Result<()>
where
    W: FnMut(&'static str) -> std::io::Result<F>,
    F: Future<Output = std::io::Result<u64>>,
{
    let rounds = std::env::var("MAPVIEW_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    println!("median of {rounds} rounds (by MB/s)\n");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut runs: Vec<Vec<Run>> = names.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (name, runs) in names.iter().zip(&mut runs) {
            let run = runtime.block_on(measure(work(name)?))?;
            if run.bytes != bytes {
                let moved = run.bytes;
                return Err(std::io::Error::other(format!(
                    "{name} moved {moved} bytes, not {bytes}"
                )));
            }
            runs.push(run);
        }
    }
    print_header();
    for (name, runs) in names.iter().zip(runs) {
        print_row(name, &median(runs));
    }
    Ok(())
}

/// Prints the table header for [`print_row`].
fn print_header() {
    println!(
        "{:<34} {:>6} {:>10} {:>12} {:>6} {:>7} {:>7} {:>7}",
        "", "MB/s", "maj.faults", "longest poll", "ticks", "p50 ms", "p99 ms", "max ms"
    );
}

/// Prints one run as a table row.
fn print_row(name: &str, run: &Run) {
    println!(
        "{:<34} {:>6.0} {:>10} {:>9.2} ms {:>6} {:>7.2} {:>7.2} {:>7.2}",
        name,
        run.bytes as f64 / run.seconds / 1e6,
        run.major_faults,
        run.longest_poll.as_secs_f64() * 1000.0,
        run.lateness.len(),
        percentile_ms(&run.lateness, 0.5),
        percentile_ms(&run.lateness, 0.99),
        percentile_ms(&run.lateness, 1.0),
    );
}
