//! Sequential write of a file with 64 KiB buffers, including the final
//! durable flush: mapview's `ViewStream` against `tokio::fs::File` and
//! `std::fs::File` in `spawn_blocking`.
//!
//! `cargo bench -p mapview-benches --bench write` (size: `MAPVIEW_BENCH_BYTES`, default 1 GiB).
//! Each iteration overwrites the same, already allocated file from its start
//! and ends when the bytes are durable (`flush` of the stream; `sync_all` of
//! the files). Overwriting keeps block allocation and the discards of
//! deleted files (this disk is mounted with `discard`) out of the figures.

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use mapview::MappedFile;
use support::BUF;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Runtime;

/// A file of `len` bytes, written and synced once, for the benches to
/// overwrite.
fn allocated_file(dir: &Path, len: usize) -> PathBuf {
    let path = dir.join("write-bench.bin");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![1u8; 1 << 20];
    for _ in 0..len / block.len() {
        file.write_all(&block).unwrap();
    }
    file.sync_all().unwrap();
    path
}

fn write(c: &mut Criterion) {
    let len = support::bench_bytes();
    let dir = tempfile::tempdir().unwrap();
    let path = allocated_file(dir.path(), len);
    let block: Vec<u8> = (0..BUF).map(|i| (i * 13) as u8).collect();
    let rt = Runtime::new().unwrap();
    let mut group = c.benchmark_group("write_durable");
    support::configure(&mut group, len, 10);

    group.bench_function("mapview ViewStream (+ flush)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let map = unsafe { MappedFile::create(&path, len as u64) }.unwrap();
                let mut stream = map.stream(..).unwrap();
                for _ in 0..len / BUF {
                    stream.write_all(black_box(&block)).await.unwrap();
                }
                stream.flush().await.unwrap();
            })
        })
    });
    group.bench_function("tokio::fs::File (+ sync_all)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut file = tokio::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .await
                    .unwrap();
                for _ in 0..len / BUF {
                    file.write_all(black_box(&block)).await.unwrap();
                }
                file.flush().await.unwrap();
                file.sync_all().await.unwrap();
            })
        })
    });
    group.bench_function("std::fs::File in spawn_blocking (+ sync_all)", |b| {
        b.iter(|| {
            let path = path.clone();
            let block = block.clone();
            rt.block_on(async {
                tokio::task::spawn_blocking(move || {
                    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    for _ in 0..len / BUF {
                        file.write_all(black_box(&block)).unwrap();
                    }
                    file.sync_all().unwrap();
                })
                .await
                .unwrap()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, write);
criterion_main!(benches);
