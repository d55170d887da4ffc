//! The process-wide read-ahead budget: many streams over more data than the
//! budget keep their prefetched bytes near it, every reader still gets its
//! bytes without a major fault on the runtime's thread, and the budget is
//! whole again when the streams are gone. One test in this binary, with its
//! own pager settings.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cold_pattern_file;
use mapview::{MappedFile, Pager, StreamOptions};
use tokio::io::AsyncReadExt;

const BUDGET: u64 = 8 << 20;
const STREAMS: usize = 64;
const SPAN: usize = 4 << 20;
/// What a waiting reader may take beyond a spent budget: its share of it,
/// but at least 64 KiB.
const FLOOR: u64 = if BUDGET / STREAMS as u64 > 64 << 10 {
    BUDGET / STREAMS as u64
} else {
    64 << 10
};

#[test]
fn streams_share_the_read_ahead_budget_and_never_fault_on_the_runtime_thread() {
    Pager::builder()
        .threads(4)
        .read_ahead_budget(BUDGET)
        .install()
        .unwrap();
    let pager = Pager::current();
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = cold_pattern_file(dir.path(), STREAMS * SPAN);
    // SAFETY: the test's own file; nothing truncates it.
    let map = unsafe { MappedFile::open(&path).unwrap() };

    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = std::thread::spawn({
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(pager.read_ahead_in_use(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let faults_before = common::major_faults_of_this_thread();
    let reads: Vec<_> = runtime.block_on(async {
        // Each stream asks for windows as large as its whole range: 256 MiB
        // in all against a budget of 8.
        let options = StreamOptions::new().read_ahead(SPAN as u64);
        let reads = (0..STREAMS).map(|i| {
            let start = (i * SPAN) as u64;
            let mut stream = map
                .stream_with(start..start + SPAN as u64, &options)
                .unwrap();
            async move {
                let mut got = Vec::with_capacity(SPAN);
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = stream.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    tokio::task::yield_now().await; // interleave the readers
                }
                (i, got)
            }
        });
        futures::future::join_all(reads).await
    });
    let faults = common::major_faults_of_this_thread() - faults_before;
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();

    for (i, got) in reads {
        assert!(
            got == data[i * SPAN..][..SPAN],
            "stream {i} read wrong bytes"
        );
    }
    assert_eq!(faults, 0, "major faults on the runtime's thread");
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak <= BUDGET + STREAMS as u64 * FLOOR,
        "{peak} bytes ahead at the peak"
    );
    assert!(
        peak < (STREAMS * SPAN) as u64 / 2,
        "{peak} bytes ahead at the peak: the budget did not bound the windows"
    );
    // The streams are gone: the whole budget is free again.
    assert_eq!(pager.read_ahead_in_use(), 0);
}
