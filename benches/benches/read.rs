//! Sequential read of a hot file with 64 KiB buffers: mapview's `ViewStream`
//! (copying `AsyncRead`, and zero-copy `chunks()`) against what a user would
//! pick instead, with a plain in-memory copy as the ceiling.
//!
//! `cargo bench -p mapview-benches --bench read` (size: `MAPVIEW_BENCH_BYTES`, default 1 GiB).
//! Every reader moves the same bytes through a 64 KiB buffer, except
//! `chunks()`, which hands out `Bytes` that point into the page cache and
//! are not read by this benchmark (that is what zero-copy buys a server).

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use fmmap::tokio::{AsyncMmapFile, AsyncMmapFileExt};
use futures::StreamExt;
use mapview::MappedFile;
use support::BUF;
use tokio::io::{AsyncReadExt, BufReader};
use tokio::runtime::Runtime;

/// Makes a file of `len` bytes of a pattern and reads it once, so that it is
/// in the page cache (hot).
fn hot_file(dir: &Path, len: usize) -> PathBuf {
    let path = dir.join("read-bench.bin");
    let block: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i * 31 + i / 4096) as u8)
        .collect();
    let mut file = std::fs::File::create(&path).unwrap();
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        std::io::Write::write_all(&mut file, &block[..n]).unwrap();
        left -= n;
    }
    drop(file);
    std::io::copy(
        &mut std::fs::File::open(&path).unwrap(),
        &mut std::io::sink(),
    )
    .unwrap();
    path
}

async fn drain(mut reader: impl tokio::io::AsyncRead + Unpin, len: usize) {
    let mut buf = vec![0u8; BUF];
    let mut total = 0;
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        black_box(&buf[..n]);
        total += n;
    }
    assert_eq!(total, len);
}

fn read(c: &mut Criterion) {
    let len = support::bench_bytes();
    let dir = tempfile::tempdir().unwrap();
    let path = hot_file(dir.path(), len);
    let rt = Runtime::new().unwrap();
    let mut group = c.benchmark_group("read_hot");
    support::configure(&mut group, len, 6);

    let memory = std::fs::read(&path).unwrap();
    group.bench_function("memcpy ceiling (in-memory copy_from_slice)", |b| {
        let mut buf = vec![0u8; BUF];
        b.iter(|| {
            for chunk in memory.chunks(BUF) {
                buf[..chunk.len()].copy_from_slice(black_box(chunk));
                black_box(&buf);
            }
        })
    });
    drop(memory);

    group.bench_function("mapview ViewStream (AsyncRead)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let map = unsafe { MappedFile::open(&path) }.unwrap();
                drain(map.stream(..).unwrap(), len).await;
            })
        })
    });
    group.bench_function("mapview chunks() (zero-copy Bytes)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let map = unsafe { MappedFile::open(&path) }.unwrap();
                let mut chunks = map.stream(..).unwrap().chunks(BUF);
                let mut total = 0;
                while let Some(chunk) = chunks.next().await {
                    total += black_box(chunk.unwrap()).len();
                }
                assert_eq!(total, len);
            })
        })
    });
    group.bench_function("tokio::fs::File", |b| {
        b.iter(|| {
            rt.block_on(async { drain(tokio::fs::File::open(&path).await.unwrap(), len).await })
        })
    });
    group.bench_function("tokio BufReader<tokio::fs::File>", |b| {
        b.iter(|| {
            rt.block_on(async {
                let file = tokio::fs::File::open(&path).await.unwrap();
                drain(BufReader::with_capacity(BUF, file), len).await
            })
        })
    });
    group.bench_function("std::fs::File in spawn_blocking", |b| {
        b.iter(|| {
            rt.block_on(async {
                let path = path.clone();
                let total = tokio::task::spawn_blocking(move || {
                    let mut file = std::fs::File::open(path).unwrap();
                    let mut buf = vec![0u8; BUF];
                    let mut total = 0;
                    loop {
                        let n = file.read(&mut buf).unwrap();
                        if n == 0 {
                            break total;
                        }
                        black_box(&buf[..n]);
                        total += n;
                    }
                })
                .await
                .unwrap();
                assert_eq!(total, len);
            })
        })
    });
    group.bench_function("fmmap AsyncMmapFileReader", |b| {
        b.iter(|| {
            rt.block_on(async {
                let file = unsafe { AsyncMmapFile::open(&path).await }.unwrap();
                drain(file.reader(0).unwrap(), len).await
            })
        })
    });
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
