//! Does reading a cold file stall the executor? Streams a file whose pages
//! were evicted from the page cache on a `current_thread` runtime while a
//! second task asks to be woken every millisecond and records how late it
//! ran (see `benches/src/ticker.rs`).
//!
//! `cargo run --release -p mapview-benches --bin cold_read -- [SIZE_MIB]` (default 1024).
//! It makes its own file (in the system temp dir, removed at the end), and
//! for each reader evicts the file's pages with `posix_fadvise(DONTNEED)`
//! before reading it. Readers: mapview's `ViewStream`, a naive reader that
//! copies out of a mapping inside `poll_read` (what a plain mmap + AsyncRead
//! adapter does), and `tokio::fs::File`. Then it times the first 64 KiB of
//! a cold `ViewStream` with a 32 MiB read-ahead window.

#[path = "../cold_file.rs"]
mod cold_file;
#[path = "../ticker.rs"]
mod ticker;

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

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

async fn read_to_end(mut reader: impl AsyncRead + Unpin) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

async fn read_with(name: &str, path: PathBuf) -> io::Result<u64> {
    match name {
        "mapview ViewStream" => {
            // SAFETY: this program is the only user of its temp file.
            let map = unsafe { mapview::MappedFile::open(&path)? };
            read_to_end(map.stream(..)?).await
        }
        "naive mmap memcpy in poll_read" => {
            let file = std::fs::File::open(&path)?;
            // SAFETY: as above.
            let map = unsafe { memmap2::Mmap::map(&file)? };
            read_to_end(NaiveMmapReader { map, pos: 0 }).await
        }
        _ => read_to_end(tokio::fs::File::open(&path).await?).await,
    }
}

fn main() -> io::Result<()> {
    let mib: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1024), |a| a.parse())
        .map_err(io::Error::other)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cold.bin");
    cold_file::make_file(&path, (mib as u64) << 20)?;
    println!("cold read of {mib} MiB, 64 KiB reads, current_thread runtime, 1 ms ticker");
    let names = [
        "mapview ViewStream",
        "naive mmap memcpy in poll_read",
        "tokio::fs::File",
    ];
    ticker::compare(&names, (mib << 20) as u64, |name| {
        cold_file::evict(&path)?;
        Ok(read_with(name, path.clone()))
    })?;
    first_bytes(&path)
}

/// How long the first 64 KiB of a cold `ViewStream` with a 32 MiB
/// read-ahead window take: the prefetcher hands out its window a step
/// (1 MiB) at a time, so the reader need not wait for all of it.
fn first_bytes(path: &Path) -> io::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let options = mapview::StreamOptions::new().read_ahead(32 << 20);
    let mut millis = Vec::new();
    for _ in 0..7 {
        cold_file::evict(path)?;
        // SAFETY: this program is the only user of its temp file.
        let map = unsafe { mapview::MappedFile::open(path)? };
        let mut stream = runtime.block_on(async { map.stream_with(.., &options) })?;
        let mut buf = vec![0u8; BUF];
        let start = std::time::Instant::now();
        runtime.block_on(stream.read_exact(&mut buf))?;
        millis.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    millis.sort_by(f64::total_cmp);
    let shown: Vec<String> = millis.iter().map(|ms| format!("{ms:.2}")).collect();
    println!(
        "\nfirst 64 KiB of a cold ViewStream, 32 MiB read-ahead, 7 tries (ms): {}",
        shown.join(" ")
    );
    Ok(())
}
