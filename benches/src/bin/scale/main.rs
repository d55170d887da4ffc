//! Many streams over data larger than memory: N tasks on one
//! `current_thread` runtime each read a disjoint range of one cold file
//! with 64 KiB reads, through mapview's `ViewStream` and through
//! `tokio::fs::File` (seek + read), side by side in one run.
//!
//! `cargo run --release -p mapview-benches --bin scale -- [--quick]
//! [--size-mib M] [--streams 1,16,256,1024] [--hog]`
//!
//! With `RESULTS_CSV=benches/results/scale.csv` it also appends its figures
//! there, for `python3 benches/plot.py` to draw `scale.svg`.
//! - Full mode (the default) makes a file of 1.33x the machine's memory, so
//!   that it cannot all stay in the page cache, and reads it with
//!   N = 1, 16, 256 and 1024 streams.
//! - `--quick` makes a 2 GiB file instead, and scales the pager's read-ahead
//!   budget down by the same factor as the file (`--size-mib` likewise).
//! - `--hog` runs everything beside two busy-looping processes.
//!
//! Each (reader, N) runs in a child process of its own (this program, run
//! again), so that the peaks of `/proc/self/status` are those of the run:
//! threads and page tables sampled every 5 ms, peak RSS from `VmHWM`.
//! Before each run the file's pages are dropped from the page cache and
//! checked gone with `mincore`. The readers run interleaved, mapview then
//! `tokio::fs` for each N, and before each N the disk's own rate is taken
//! with direct reads (what `dd iflag=direct bs=4M` does), so that a disk
//! that slows down during the run shows beside the figures. The file is
//! made in the system temp dir and removed at the end, on an error, and on
//! Ctrl-C.

#[path = "../../cold_file.rs"]
mod cold_file;
mod disk;
mod figures;
mod hog;
mod polls;
mod proc_status;
mod run;
mod scratch;
mod table;

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

use figures::Figures;
use run::Reader;

/// The argument that makes this program a child that measures one run.
const CHILD: &str = "child";

/// The argument that makes this program a child that only burns CPU.
const HOG: &str = "hog";

/// The size of the file in quick mode.
const QUICK_FILE: u64 = 2 << 30;

/// How many bytes the disk's own rate is taken over, before each N.
const DISK_SAMPLE: u64 = 256 << 20;

/// What the parent was asked to do.
struct Options {
    file_len: Option<u64>,
    quick: bool,
    streams: Vec<usize>,
    hog: bool,
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(CHILD) => child(&args[1..]),
        Some(HOG) => {
            die_with_parent()?;
            hog::burn()
        }
        _ => measure(&parse(&args)?),
    }
}

const USAGE: &str = "usage: scale [--quick] [--size-mib M] [--streams 1,16,256,1024] [--hog]";

fn parse(args: &[String]) -> io::Result<Options> {
    let mut options = Options {
        file_len: None,
        quick: false,
        streams: vec![1, 16, 256, 1024],
        hog: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--hog" => options.hog = true,
            "--size-mib" => options.file_len = Some(number(args.next())? << 20),
            "--streams" => {
                let list = args.next().ok_or_else(|| invalid(USAGE.into()))?;
                options.streams = list
                    .split(',')
                    .map(|n| number(Some(n)).map(|n| n as usize))
                    .collect::<io::Result<_>>()?;
            }
            _ => return Err(invalid(USAGE.into())),
        }
    }
    if options.streams.contains(&0) || options.file_len == Some(0) {
        return Err(invalid(USAGE.into()));
    }
    Ok(options)
}

fn number(arg: Option<impl AsRef<str>>) -> io::Result<u64> {
    let arg = arg.ok_or_else(|| invalid(USAGE.into()))?;
    let arg = arg.as_ref();
    arg.parse()
        .map_err(|e| invalid(format!("{arg:?}: {e}\n{USAGE}")))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// The parent: makes the file, runs every (reader, N) in a child process,
/// and prints the table.
fn measure(options: &Options) -> io::Result<()> {
    let memory = proc_status::memory()?;
    let full_len = memory / 3 * 4;
    let file_len = options
        .file_len
        .unwrap_or(if options.quick { QUICK_FILE } else { full_len });
    // The library's default budget is sized for data larger than memory; a
    // smaller file gets a budget smaller by the same factor, so that it is
    // the same fraction of the data as in the full run. (The parent makes
    // no stream: its pager only tells the default.)
    let default_budget = mapview::Pager::current().read_ahead_budget();
    let budget = (default_budget as f64 * (file_len as f64 / full_len as f64).min(1.0)) as u64;
    let mode = match (options.file_len, options.quick) {
        (Some(_), _) => "set size",
        (None, true) => "quick mode",
        (None, false) => "full mode",
    };
    println!(
        "{mode}: file of {} MiB ({:.2}x memory of {} MiB), read-ahead budget {} MiB, {} cores, load average {}{}",
        file_len >> 20,
        file_len as f64 / memory as f64,
        memory >> 20,
        budget >> 20,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        proc_status::load_average()?,
        if options.hog { ", beside two busy-looping processes" } else { "" },
    );
    let file = scratch::ScratchFile::create(file_len)?;
    let _hog = options.hog.then(hog::Hog::start).transpose()?;
    let mut rows = Vec::new();
    for &streams in &options.streams {
        let disk = disk::direct_read_rate(file.path(), DISK_SAMPLE.min(file_len))?;
        for reader in Reader::ALL {
            cold_file::evict(file.path())?;
            let figures = run_child(reader, streams, file.path(), budget)?;
            eprintln!(
                "{streams} streams, {}: {:.0} MB/s",
                reader.name(),
                figures.megabytes_per_second()
            );
            rows.push(table::Row {
                streams,
                reader,
                disk,
                figures,
            });
        }
    }
    println!("load average at the end {}\n", proc_status::load_average()?);
    table::print(&rows);
    if let Some(path) = std::env::var_os("RESULTS_CSV") {
        let run = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
        table::append_csv(&rows, Path::new(&path), &format!("scale {run}"))?;
    }
    Ok(())
}

/// Runs one (reader, N) in a child process, and returns what it measured.
fn run_child(reader: Reader, streams: usize, path: &Path, budget: u64) -> io::Result<Figures> {
    let output = Command::new(std::env::current_exe()?)
        .arg(CHILD)
        .arg(reader.name())
        .arg(streams.to_string())
        .arg(path)
        .arg(budget.to_string())
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "the run of {streams} streams with {} failed: {}",
            reader.name(),
            output.status
        )));
    }
    String::from_utf8_lossy(&output.stdout).trim().parse()
}

/// The child: measures one (reader, N) and prints its figures.
fn child(args: &[String]) -> io::Result<()> {
    die_with_parent()?;
    let [reader, streams, path, budget] = args else {
        return Err(invalid(format!(
            "usage: scale {CHILD} READER STREAMS PATH BUDGET"
        )));
    };
    let reader = reader.parse()?;
    let streams = number(Some(streams))? as usize;
    let budget = number(Some(budget))?;
    let figures = run::run(reader, streams, Path::new(path), budget)?;
    println!("{figures}");
    Ok(())
}

/// Makes the kernel end this child when the parent ends, however it ends,
/// so that no run or hog outlives an interrupted benchmark.
fn die_with_parent() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_take_a_size_and_a_list_of_stream_counts() {
        let options = parse(&args("--quick --size-mib 64 --streams 1,8 --hog")).unwrap();
        assert!(options.quick && options.hog);
        assert_eq!(options.file_len, Some(64 << 20));
        assert_eq!(options.streams, [1, 8]);
    }

    #[test]
    fn zero_streams_and_unknown_options_are_refused() {
        for line in ["--streams 0", "--streams 1,x", "--size-mib", "--fast"] {
            let error = parse(&args(line)).err().unwrap();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{line}");
        }
    }
}
