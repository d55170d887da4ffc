//! Does reading a cold file stall the executor? Streams a file whose pages
//! were evicted from the page cache on a `current_thread` runtime while a
//! second task ticks every millisecond and records how late each tick was.
//!
//! `cargo run --release --example cold_read -- [SIZE_MIB]` (default 1024).
//! It makes its own file (in the system temp dir, removed at the end), and
//! for each reader evicts the file's pages with `posix_fadvise(DONTNEED)`
//! before reading it. Readers: mapview's `ViewStream`, a naive reader that
//! copies out of a mapping inside `poll_read` (what a plain mmap + AsyncRead
//! adapter does), and `tokio::fs::File`.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

const BUF: usize = 64 << 10;

/// The naive adapter: a memcpy out of the mapping inside `poll_read`, which
/// takes every major page fault on the async worker.
struct NaiveMmapReader {
    map: memmap2::Mmap,
    pos: usize,
}

impl AsyncRead for NaiveMmapReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = buf.remaining().min(self.map.len() - self.pos);
        let pos = self.pos;
        buf.put_slice(&self.map[pos..pos + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

fn make_file(path: &Path, len: usize) -> io::Result<()> {
    let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 131 + 7) as u8).collect();
    let mut file = std::fs::File::create(path)?;
    for _ in 0..len / block.len() {
        io::Write::write_all(&mut file, &block)?;
    }
    file.sync_all()
}

fn evict(path: &Path) -> io::Result<()> {
    let file = std::fs::File::open(path)?;
    file.sync_all()?;
    // SAFETY: a valid descriptor; fadvise only drops clean cached pages.
    let ret = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

/// Major page faults (waits on the disk) taken by the calling thread so far.
fn major_faults_of_this_thread() -> i64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage.ru_majflt
    }
}

/// Reads `reader` to the end while a ticker task records its lateness.
/// Returns (bytes, seconds, major faults on the runtime thread, lateness of
/// each tick).
async fn measure(mut reader: impl AsyncRead + Unpin) -> io::Result<(u64, f64, i64, Vec<Duration>)> {
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
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    let faults = major_faults_of_this_thread() - faults_before;
    ticker.abort();
    let (mut lateness, due) = ticks.lock().unwrap().clone();
    // The tick due now has not run yet: if the reader never yielded, it has
    // waited for the whole read. Count it too.
    lateness.push(tokio::time::Instant::now().saturating_duration_since(due));
    Ok((total, seconds, faults, lateness))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> io::Result<()> {
    let mib: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1024), |a| a.parse())
        .map_err(io::Error::other)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cold.bin");
    make_file(&path, mib << 20)?;
    println!("file: {mib} MiB, 64 KiB reads, current_thread runtime, 1 ms ticker\n");
    println!(
        "{:<32} {:>7} {:>11} {:>6} {:>7} {:>7} {:>7}",
        "reader", "MB/s", "maj.faults", "ticks", "p50 ms", "p99 ms", "max ms"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for name in [
        "mapview ViewStream",
        "naive mmap memcpy in poll_read",
        "tokio::fs::File",
    ] {
        evict(&path)?;
        let result = runtime.block_on(async {
            match name {
                "mapview ViewStream" => {
                    // SAFETY: this program is the only user of its temp file.
                    let map = unsafe { mapview::MappedFile::open(&path)? };
                    measure(map.stream(..)?).await
                }
                "naive mmap memcpy in poll_read" => {
                    let file = std::fs::File::open(&path)?;
                    // SAFETY: as above.
                    let map = unsafe { memmap2::Mmap::map(&file)? };
                    measure(NaiveMmapReader { map, pos: 0 }).await
                }
                _ => measure(tokio::fs::File::open(&path).await?).await,
            }
        });
        let (bytes, seconds, faults, mut lateness) =
            result.map_err(|e| io::Error::other(format!("{name}: {e}")))?;
        assert_eq!(
            bytes,
            (mib << 20) as u64,
            "{name} read the wrong number of bytes"
        );
        lateness.sort();
        let max = lateness.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        println!(
            "{:<32} {:>7.0} {:>11} {:>6} {:>7.2} {:>7.2} {:>7.2}",
            name,
            bytes as f64 / seconds / 1e6,
            faults,
            lateness.len(),
            percentile(&lateness, 0.5),
            percentile(&lateness, 0.99),
            max,
        );
    }
    Ok(())
}
