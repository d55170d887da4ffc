//! Does writing a large file stall the executor? Overwrites a file with
//! 64 KiB writes and a final durable flush on a `current_thread` runtime
//! while a second task asks to be woken every millisecond and records how
//! late it ran. (The file is written and synced once up front, so block
//! allocation and discards of deleted files stay out of the figures.)
//!
//! `cargo run --release -p mapview-benches --bin write_latency -- [SIZE_MIB]` (default
//! 1024). Writers: mapview's `ViewStream` (+ `flush`), a naive writer that
//! copies into a mapping inside `poll_write` (+ `msync`), and
//! `tokio::fs::File` (+ `sync_all`). Files go to the system temp dir and
//! are removed at the end.

#[path = "../ticker.rs"]
mod ticker;

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncWrite, AsyncWriteExt};

const BUF: usize = 64 << 10;

/// The naive adapter: a memcpy into the mapping inside `poll_write` (every
/// write fault on the async worker) and a blocking `msync` in `poll_flush`.
struct NaiveMmapWriter {
    map: memmap2::MmapMut,
    pos: usize,
}

impl AsyncWrite for NaiveMmapWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = buf.len().min(self.map.len() - self.pos);
        let pos = self.pos;
        self.map[pos..pos + n].copy_from_slice(&buf[..n]);
        self.pos += n;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.map.flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

async fn write_all(mut writer: impl AsyncWrite + Unpin, len: u64) -> io::Result<u64> {
    let block: Vec<u8> = (0..BUF).map(|i| (i * 13) as u8).collect();
    for _ in 0..len / BUF as u64 {
        writer.write_all(&block).await?;
    }
    writer.flush().await?;
    Ok(len)
}

async fn write_with(name: &str, path: PathBuf, len: u64) -> io::Result<u64> {
    match name {
        "mapview ViewStream (+ flush)" => {
            // SAFETY: this program is the only user of its temp file.
            let map = unsafe { mapview::MappedFile::create(&path, len)? };
            write_all(map.stream(..)?, len).await
        }
        "naive mmap memcpy in poll_write" => {
            // Overwrites the allocated file, as the other writers do
            // (truncating it would leave the next writer to allocate).
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)?;
            // SAFETY: as above.
            let map = unsafe { memmap2::MmapMut::map_mut(&file)? };
            write_all(NaiveMmapWriter { map, pos: 0 }, len).await
        }
        _ => {
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .await?;
            let written = write_all(&mut file, len).await?;
            file.sync_all().await?;
            Ok(written)
        }
    }
}

fn main() -> io::Result<()> {
    let mib: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(1024), |a| a.parse())
        .map_err(io::Error::other)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("written.bin");
    std::fs::write(&path, vec![1u8; (mib << 20) as usize])?;
    std::fs::File::open(&path)?.sync_all()?;
    println!("durable write of {mib} MiB, 64 KiB writes, current_thread runtime, 1 ms ticker");
    let names = [
        "mapview ViewStream (+ flush)",
        "naive mmap memcpy in poll_write",
        "tokio::fs::File (+ sync_all)",
    ];
    ticker::compare(&names, mib << 20, |name| {
        Ok(write_with(name, path.clone(), mib << 20))
    })
}
