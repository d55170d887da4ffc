//! Measures how well a `current_thread` runtime stays responsive while a
//! task does I/O: a ticker task asks to be woken every millisecond and
//! records how late it ran each time.
//!
//! The wake-ups come from an alarm thread that sleeps until each deadline
//! (the kernel's timer is precise to tens of microseconds), the way a
//! socket event or another thread wakes a server's task: what is measured
//! is how late the runtime polls a task once it is woken. The "ticker
//! alone" row shows that floor on this machine.
//!
//! tokio's own timer is also measured, as "timer max": a second ticker
//! sleeps on `tokio::time`. That timer counts whole milliseconds: it rounds
//! a deadline up to the next millisecond, the time it parks at down, and
//! parks for the difference (`park_internal` in tokio's
//! `runtime/time/mod.rs`). So a runtime that parks in the middle of a
//! millisecond, as it does whenever a task waits for something (the disk, a
//! peer), oversleeps a timer by up to 2 ms. The "a task that only waits"
//! row shows that: a task that waits 0.3-2 ms at a time on a blocking
//! thread and does nothing else.
//!
//! Each poll of the work is also watched through the thread's context
//! switches: "polls slept" counts polls in which the runtime's thread
//! blocked (a disk wait, a contended lock), which a well-behaved task never
//! does; "preempted" counts polls in which the kernel ran another thread on
//! its CPU, which is the machine's doing. "on CPU" is the most CPU time a
//! single poll used, so a long poll that was mostly preempted shows as such.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one measured run did.
struct Run {
    bytes: u64,
    seconds: f64,
    /// Major page faults (waits on the disk) of the runtime's thread.
    major_faults: i64,
    /// The longest single poll of the work: how long the work itself kept
    /// the runtime's thread without yielding.
    longest_poll: Duration,
    /// The most CPU time the thread used in one poll of the work: the
    /// longest poll less the time the thread was off its CPU.
    longest_on_cpu: Duration,
    /// Polls of the work during which the runtime's thread slept (blocked:
    /// on the disk, a lock, a system call), and during which the kernel
    /// gave its CPU to another thread (preempted: the machine, not the work).
    polls_slept: u64,
    polls_preempted: u64,
    /// How late each tick woken by the alarm thread ran, sorted.
    lateness: Vec<Duration>,
    /// The latest tick of tokio's timer.
    timer_max: Duration,
}

/// The resource usage of the calling thread so far.
fn usage_of_this_thread() -> libc::rusage {
    // SAFETY: getrusage fills the zeroed struct it is given; RUSAGE_THREAD
    // cannot fail for the calling thread.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    }
}

/// Major page faults taken by the calling thread so far.
fn major_faults_of_this_thread() -> i64 {
    usage_of_this_thread().ru_majflt
}

/// The CPU time the calling thread used so far.
fn cpu_time_of_this_thread() -> Duration {
    // SAFETY: clock_gettime fills the zeroed struct it is given; the
    // calling thread's CPU clock always exists.
    let time = unsafe {
        let mut time: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time);
        time
    };
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

/// What [`timing_polls`] saw of the polls of a future.
#[derive(Default)]
struct Polls {
    longest: Duration,
    longest_on_cpu: Duration,
    slept: u64,
    preempted: u64,
}

/// How often the tickers ask to be woken.
const TICK: Duration = Duration::from_millis(1);

/// What a ticker has seen: how late each tick ran, and when the tick it
/// waits for is due.
struct TickLog {
    lateness: Vec<Duration>,
    due: Instant,
}

/// A task that asks every [`TICK`] to be woken by `wake_at`, and logs how
/// late it ran.
fn spawn_ticker<W, F>(wake_at: W) -> (tokio::task::JoinHandle<()>, Arc<Mutex<TickLog>>)
where
    W: Fn(Instant) -> F + Send + 'static,
    F: Future<Output = ()> + Send,
{
    let log = Arc::new(Mutex::new(TickLog {
        lateness: Vec::new(),
        due: Instant::now(),
    }));
    let ticker = tokio::spawn({
        let log = Arc::clone(&log);
        async move {
            loop {
                let due = Instant::now() + TICK;
                log.lock().unwrap().due = due;
                wake_at(due).await;
                log.lock().unwrap().lateness.push(due.elapsed());
            }
        }
    });
    (ticker, log)
}

/// Stops a ticker, and returns how late each of its ticks ran, sorted.
fn stop_ticker(ticker: tokio::task::JoinHandle<()>, log: &Mutex<TickLog>) -> Vec<Duration> {
    ticker.abort();
    let mut log = log.lock().unwrap();
    // The tick due now has not run yet: if the work never yielded, it has
    // waited for all of it. Count it too.
    let waiting = log.due.elapsed();
    log.lateness.push(waiting);
    let mut lateness = std::mem::take(&mut log.lateness);
    lateness.sort();
    lateness
}

/// A deadline, and the alarm to fire at it.
type Alarm = (Instant, tokio::sync::oneshot::Sender<()>);

/// A thread that sleeps until each deadline it is sent, then fires the
/// alarm sent with it; it ends when the sender is dropped.
fn alarm_clock() -> std::sync::mpsc::Sender<Alarm> {
    let (alarms, deadlines) = std::sync::mpsc::channel::<Alarm>();
    std::thread::spawn(move || {
        for (due, alarm) in deadlines {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let _ = alarm.send(()); // the ticker may be gone
        }
    });
    alarms
}

/// Runs `work` (which returns the bytes it moved) as a task on the current
/// runtime while the tickers record their lateness.
async fn measure<F>(work: F) -> std::io::Result<Run>
where
    F: Future<Output = std::io::Result<u64>> + Send + 'static,
{
    let alarms = alarm_clock();
    let (woken, woken_log) = spawn_ticker(move |due| {
        let (alarm, rings) = tokio::sync::oneshot::channel();
        let _ = alarms.send((due, alarm));
        async move {
            let _ = rings.await;
        }
    });
    let (timer, timer_log) = spawn_ticker(|due| tokio::time::sleep_until(due.into()));
    tokio::task::yield_now().await; // let the tickers start
    let start = Instant::now();
    let faults_before = major_faults_of_this_thread();
    let (bytes, polls) = tokio::spawn(timing_polls(work))
        .await
        .map_err(std::io::Error::other)?;
    let bytes = bytes?;
    let seconds = start.elapsed().as_secs_f64();
    let major_faults = major_faults_of_this_thread() - faults_before;
    let lateness = stop_ticker(woken, &woken_log);
    let timer_max = *stop_ticker(timer, &timer_log).last().unwrap();
    Ok(Run {
        bytes,
        seconds,
        major_faults,
        longest_poll: polls.longest,
        longest_on_cpu: polls.longest_on_cpu,
        polls_slept: polls.slept,
        polls_preempted: polls.preempted,
        lateness,
        timer_max,
    })
}

/// Runs `work` to completion, and returns its output with what its polls
/// did: the longest (how long the work kept the runtime's thread without
/// yielding), and how many slept or were preempted, from the thread's
/// voluntary and involuntary context switches.
async fn timing_polls<F: Future>(work: F) -> (F::Output, Polls) {
    let mut work = std::pin::pin!(work);
    let mut polls = Polls::default();
    let output = std::future::poll_fn(|cx| {
        let before = usage_of_this_thread();
        let cpu_before = cpu_time_of_this_thread();
        let polled = Instant::now();
        let poll = work.as_mut().poll(cx);
        polls.longest = polls.longest.max(polled.elapsed());
        let on_cpu = cpu_time_of_this_thread() - cpu_before;
        polls.longest_on_cpu = polls.longest_on_cpu.max(on_cpu);
        let after = usage_of_this_thread();
        polls.slept += u64::from(after.ru_nvcsw > before.ru_nvcsw);
        polls.preempted += u64::from(after.ru_nivcsw > before.ru_nivcsw);
        poll
    })
    .await;
    (output, polls)
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The figures of a table row, in this order.
const COLUMNS: [&str; 11] = [
    "MB/s",
    "maj.faults",
    "polls slept",
    "preempted",
    "longest poll ms",
    "on CPU ms",
    "ticks",
    "p50 ms",
    "p99 ms",
    "max ms",
    "timer max ms",
];

/// The column of the max tick lateness.
const MAX: usize = COLUMNS.len() - 2;

/// One run as the figures of a table row (see [`COLUMNS`]).
fn figures(run: &Run) -> [f64; COLUMNS.len()] {
    [
        run.bytes as f64 / run.seconds / 1e6,
        run.major_faults as f64,
        run.polls_slept as f64,
        run.polls_preempted as f64,
        run.longest_poll.as_secs_f64() * 1000.0,
        run.longest_on_cpu.as_secs_f64() * 1000.0,
        run.lateness.len() as f64,
        percentile_ms(&run.lateness, 0.5),
        percentile_ms(&run.lateness, 0.99),
        percentile_ms(&run.lateness, 1.0),
        run.timer_max.as_secs_f64() * 1000.0,
    ]
}

/// The median of each figure over the rounds, and the worst max lateness.
fn summary(rounds: &[[f64; COLUMNS.len()]]) -> ([f64; COLUMNS.len()], f64) {
    let median = std::array::from_fn(|column| {
        let mut values: Vec<f64> = rounds.iter().map(|figures| figures[column]).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    });
    let worst = rounds
        .iter()
        .map(|figures| figures[MAX])
        .fold(0.0, f64::max);
    (median, worst)
}

/// The name under which [`compare`] measures the ticker with no work.
const FLOOR: &str = "ticker alone (the floor)";

/// The name under which [`compare`] measures the ticker beside a task that
/// only waits.
const WAITING: &str = "a task that only waits (floor)";

/// For 500 ms, waits 0.3-2 ms at a time on a blocking thread.
async fn only_wait() -> std::io::Result<u64> {
    let start = Instant::now();
    for turn in 0u64.. {
        if start.elapsed() >= Duration::from_millis(500) {
            break;
        }
        let wait = Duration::from_micros(300 + turn * 170 % 1700);
        tokio::task::spawn_blocking(move || std::thread::sleep(wait)).await?;
    }
    Ok(0)
}

/// Runs each of `names`, and the two floors, once a round for
/// `MAPVIEW_ROUNDS` rounds (default 5), interleaved, on a `current_thread`
/// runtime under [`measure`]; `work` makes the future for a name (after any
/// preparation, such as evicting pages) and returns the bytes it moved,
/// which must be `bytes`. Prints the median of each figure over the rounds,
/// and the worst max lateness of any round: on a shared machine a single
/// round can catch a hiccup of the host that no reader caused.
pub fn compare<W, F>(names: &[&'static str], bytes: u64, mut work: W) -> std::io::Result<()>
where
    W: FnMut(&'static str) -> std::io::Result<F>,
    F: Future<Output = std::io::Result<u64>> + Send + 'static,
{
    let rounds = std::env::var("MAPVIEW_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    println!("median of {rounds} rounds\n");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let all: Vec<&str> = names.iter().copied().chain([WAITING, FLOOR]).collect();
    let mut results: Vec<Vec<[f64; COLUMNS.len()]>> = all.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (name, results) in all.iter().zip(&mut results) {
            let run = if *name == FLOOR {
                runtime.block_on(measure(async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Ok(0)
                }))?
            } else if *name == WAITING {
                runtime.block_on(measure(only_wait()))?
            } else {
                let run = runtime.block_on(measure(work(name)?))?;
                if run.bytes != bytes {
                    let moved = run.bytes;
                    return Err(std::io::Error::other(format!(
                        "{name} moved {moved} bytes, not {bytes}"
                    )));
                }
                run
            };
            results.push(figures(&run));
        }
    }
    print!("{:<32}", "");
    for column in COLUMNS.iter().chain(&["worst max ms"]) {
        print!(" {column:>w$}", w = column.len().max(6));
    }
    println!();
    for (name, results) in all.iter().zip(&results) {
        let (median, worst) = summary(results);
        print!("{name:<32}");
        for (column, value) in COLUMNS.iter().zip(median).chain([(&"worst max ms", worst)]) {
            let decimals = if column.ends_with("ms") { 2 } else { 0 };
            print!(" {value:>w$.decimals$}", w = column.len().max(6));
        }
        println!();
    }
    Ok(())
}
