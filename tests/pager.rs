//! The pager: however many streams are open, the process runs no more
//! background threads than the pager's bound, and every stream still reads
//! its own bytes. One test in this binary, so that the threads counted are
//! its own.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cold_pattern_file;
use mapview::{MappedFile, Pager};
use tokio::io::AsyncReadExt;

const STREAMS: usize = 2000;
const SPAN: usize = 64 << 10;
const PAGER_THREADS: usize = 4;

/// Threads of this process, and those of them that are the pager's.
///
/// A new thread carries the name of the thread that started it until it
/// names itself: the reclaim thread, started by a pager thread, is called
/// `mapview-pager` for a moment. So a pager thread counts only if it still
/// has that name a millisecond later.
fn threads() -> (usize, usize) {
    let tasks: Vec<_> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .map(|task| task.path())
        .collect();
    let is_pager = |task: &std::path::PathBuf| {
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        name.trim_end() == "mapview-pager"
    };
    let mut pager: Vec<_> = tasks.iter().filter(|task| is_pager(task)).collect();
    std::thread::sleep(Duration::from_millis(1));
    pager.retain(|task| is_pager(task));
    (tasks.len(), pager.len())
}

#[test]
fn two_thousand_cold_streams_share_the_pagers_bounded_threads() {
    Pager::builder().threads(PAGER_THREADS).install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = cold_pattern_file(dir.path(), STREAMS * SPAN);
    // SAFETY: the test's own file; nothing truncates it.
    let map = unsafe { MappedFile::open(&path).unwrap() };

    let (before, _) = threads();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = std::thread::spawn({
        let done = Arc::clone(&done);
        move || {
            let mut peak = (0, 0);
            while !done.load(Ordering::Relaxed) {
                let (all, pager) = threads();
                peak = (peak.0.max(all), peak.1.max(pager));
            }
            peak
        }
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let streams: Vec<_> = runtime.block_on(async {
        let reads = (0..STREAMS).map(|i| {
            let start = (i * SPAN) as u64;
            let mut stream = map.stream(start..start + SPAN as u64).unwrap();
            async move {
                let mut got = Vec::with_capacity(SPAN);
                stream.read_to_end(&mut got).await.unwrap();
                (i, got)
            }
        });
        futures::future::join_all(reads).await
    });
    done.store(true, Ordering::Relaxed);
    let (peak_all, peak_pager) = watcher.join().unwrap();

    for (i, got) in streams {
        assert!(
            got == data[i * SPAN..][..SPAN],
            "stream {i} read wrong bytes"
        );
    }
    assert!(peak_pager >= 1, "no pager thread was seen");
    assert!(
        peak_pager <= PAGER_THREADS,
        "{peak_pager} pager threads, bound {PAGER_THREADS}"
    );
    // The test's own threads (harness, watcher), the pager's and its
    // reclaim thread, plus a little slack for the runtime; never one per
    // stream.
    assert!(
        peak_all <= before + 1 + PAGER_THREADS + 1 + 2,
        "{peak_all} threads at the peak, {before} before the streams"
    );
}
