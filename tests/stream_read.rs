//! Stream views, read side: content, prefetch behaviour, truncation, drop,
//! and bad input.

mod common;

use std::io::{ErrorKind, SeekFrom};
use std::time::Duration;

use futures::TryStreamExt;
use mapview::{MappedFile, Pager, StreamOptions, ViewStream};
use proptest::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt};
use tokio_test::{assert_pending, assert_ready};

use common::{
    cold_pattern_file, eventually, mapped_bytes, mappings_of, pattern_file, resident_pages,
    truncate,
};

/// Sizes that are and are not page multiples, and start offsets that are and
/// are not page-aligned.
const CASES: &[(usize, u64)] = &[
    (1, 0),
    (4095, 0),
    (4096, 1),
    (100_003, 4097),
    (3 << 20, 12_345),
];

fn open(path: &std::path::Path) -> MappedFile {
    unsafe { MappedFile::open(path) }.unwrap()
}

#[tokio::test]
async fn read_to_end_returns_exactly_the_range() {
    let dir = tempfile::tempdir().unwrap();
    for &(len, start) in CASES {
        let (path, data) = pattern_file(dir.path(), len + start as usize);
        let map = open(&path);
        let mut stream = map.stream(start..).unwrap();
        assert_eq!(stream.len(), len as u64);
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, &data[start as usize..], "len {len} start {start}");
        assert_eq!(stream.position(), len as u64);
    }
}

#[tokio::test]
async fn fill_buf_and_consume_lend_the_mapping_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for &(len, start) in CASES {
        let (path, data) = pattern_file(dir.path(), len + start as usize);
        let map = open(&path);
        let mut stream = map
            .stream_with(start.., &StreamOptions::new().read_ahead(64 << 10))
            .unwrap();
        let mut out = Vec::new();
        loop {
            let buf = stream.fill_buf().await.unwrap();
            if buf.is_empty() {
                break;
            }
            let take = buf.len().min(10_000);
            out.extend_from_slice(&buf[..take]);
            stream.consume(take);
        }
        assert_eq!(out, &data[start as usize..]);
    }
}

#[tokio::test]
async fn tokio_io_copy_and_chunks_return_exactly_the_range() {
    let dir = tempfile::tempdir().unwrap();
    for &(len, start) in CASES {
        let (path, data) = pattern_file(dir.path(), len + start as usize + 100);
        let map = open(&path);
        let end = start + len as u64;
        let mut copied = Vec::new();
        tokio::io::copy(&mut map.stream(start..end).unwrap(), &mut copied)
            .await
            .unwrap();
        assert_eq!(copied, &data[start as usize..end as usize]);

        let chunks: Vec<bytes::Bytes> = map
            .stream(start..end)
            .unwrap()
            .chunks(5000)
            .try_collect()
            .await
            .unwrap();
        assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 5000));
        assert_eq!(chunks.concat(), &data[start as usize..end as usize]);
    }
}

#[tokio::test]
async fn chunks_keep_the_mapping_alive_after_everything_else_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = pattern_file(dir.path(), 50_000);
    let map = open(&path);
    let mut chunks = map.stream(..).unwrap().chunks(1 << 20);
    let chunk = chunks.try_next().await.unwrap().unwrap();
    drop(chunks);
    drop(map);
    assert_eq!(&chunk[..], &data[..]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_reads_and_seeks_match_the_bytes_in_memory(
        len in 1usize..70_000,
        start in 0u64..5000,
        ops in prop::collection::vec((0u8..4, any::<u32>()), 1..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (path, data) = pattern_file(dir.path(), len + start as usize);
        let model = &data[start as usize..];
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let map = open(&path);
            let options = StreamOptions::new().read_ahead(8192).max_read_ahead(32_768);
            let mut stream = map.stream_with(start.., &options).unwrap();
            let mut pos = 0usize;
            for (op, arg) in ops {
                match op {
                    0 => {
                        let mut buf = vec![0; arg as usize % 20_000];
                        let n = stream.read(&mut buf).await.unwrap();
                        let expect = model.len().saturating_sub(pos).min(buf.len());
                        prop_assert!(n <= expect && (n > 0 || expect == 0));
                        // After a seek past the end, pos > model.len() and n == 0.
                        let at = pos.min(model.len());
                        prop_assert_eq!(&buf[..n], &model[at..at + n]);
                        pos += n;
                    }
                    1 => {
                        let target = arg as usize % (model.len() + 100);
                        let got = stream.seek(SeekFrom::Start(target as u64)).await.unwrap();
                        prop_assert_eq!(got, target as u64);
                        pos = target;
                    }
                    2 => {
                        let back = (arg as usize % 3000).min(pos);
                        stream.seek(SeekFrom::Current(-(back as i64))).await.unwrap();
                        pos -= back;
                    }
                    _ => {
                        let from_end = arg as usize % (model.len() + 1);
                        stream.seek(SeekFrom::End(-(from_end as i64))).await.unwrap();
                        pos = model.len() - from_end;
                    }
                }
                prop_assert_eq!(stream.position(), pos as u64);
            }
            Ok(())
        })?;
    }
}

#[test]
fn cold_pages_make_the_first_poll_pending_and_the_prefetcher_wakes_it() {
    let dir = tempfile::tempdir().unwrap();
    let len = 8 << 20;
    let (path, data) = cold_pattern_file(dir.path(), len);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let map = open(&path);
    let window = 1 << 20;
    let mut stream = {
        let _guard = runtime.enter();
        map.stream_with(
            ..,
            &StreamOptions::new()
                .read_ahead(window)
                .max_read_ahead(window),
        )
        .unwrap()
    };
    let mut buf = vec![0u8; 64 << 10];
    {
        let mut read = tokio_test::task::spawn(stream.read(&mut buf));
        {
            // Held back, the job cannot deliver before the poll parks.
            let _paused = Pager::current().pause();
            assert_pending!(read.poll());
        }
        eventually("the prefetcher wakes the task", || read.is_woken());
        let n = assert_ready!(read.poll()).unwrap();
        assert_eq!(n, 64 << 10);
    }
    assert_eq!(&buf[..], &data[..64 << 10]);
    let stats = stream.stats();
    assert_eq!(stats.stalls, 1);
    assert!(stats.prefetched_bytes >= window);

    // The pages of the first window are resident now, and the prefetcher
    // goes on with the next window while the reader is still in the first.
    assert_eq!(
        resident_pages(&path, 0..window as usize),
        window as usize / 4096
    );
    let next = window as usize..2 * window as usize;
    eventually("the next window is prefetched", || {
        resident_pages(&path, next.clone()) == next.len() / 4096
    });
}

#[test]
fn prefetch_blocking_makes_cold_pages_resident_so_the_first_poll_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = cold_pattern_file(dir.path(), 8 << 20);
    let (start, wanted) = (12_345usize, 100_000usize);
    let pages = start / 4096..(start + wanted).div_ceil(4096);
    assert!(resident_pages(&path, start..start + wanted) < pages.len() / 2);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let map = open(&path);
    let mut stream = map.stream(start as u64..).unwrap();
    // On this (non-async) thread, as a server would on the blocking pool.
    stream.prefetch_blocking(wanted as u64).unwrap();
    assert_eq!(resident_pages(&path, start..start + wanted), pages.len());
    assert!(stream.stats().prefetched_bytes >= wanted as u64);

    let mut buf = vec![0u8; 64 << 10];
    let mut read = tokio_test::task::spawn(stream.read(&mut buf));
    assert_eq!(assert_ready!(read.poll()).unwrap(), 64 << 10);
    drop(read);
    assert_eq!(&buf[..], &data[start..start + (64 << 10)]);
    assert_eq!(stream.stats().stalls, 0);
}

#[tokio::test]
async fn prefetch_blocking_past_the_end_or_after_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = pattern_file(dir.path(), 1 << 20);
    let map = open(&path);
    let mut stream = map.stream(4096..).unwrap();
    stream.prefetch_blocking(u64::MAX).unwrap(); // clamped to the stream
    assert_eq!(stream.stats().prefetched_bytes, (1 << 20) - 4096);
    stream.seek(SeekFrom::End(10)).await.unwrap();
    stream.prefetch_blocking(4096).unwrap(); // nothing there: nothing to do

    let mut fresh = map.stream(..).unwrap();
    truncate(&path, 4096);
    let err = fresh.prefetch_blocking(1 << 20).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn hot_pages_are_read_without_any_stall() {
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = pattern_file(dir.path(), 4 << 20);
    std::fs::read(&path).unwrap(); // in the page cache now
    let map = open(&path);
    // One window covers the file: `mincore` finds it resident at the start,
    // so the reader waits only for the job that maps it (making a stream
    // maps nothing), never for one that reads the disk.
    let options = StreamOptions::new().read_ahead(4 << 20);
    let mut stream = map.stream_with(.., &options).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, data);
    // One stall, or none if the pager mapped it before the poll parked.
    assert!(
        stream.stats().stalls <= 1,
        "waited for more than the mapping"
    );
    assert_eq!(stream.stats().prefetched_bytes, 4 << 20);
}

async fn read_after_truncation(options: StreamOptions) -> std::io::Error {
    let dir = tempfile::tempdir().unwrap();
    let len = 8 << 20;
    let (path, _) = pattern_file(dir.path(), len);
    let map = open(&path);
    let mut stream = map.stream_with(.., &options).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    stream.read_exact(&mut buf).await.unwrap();
    truncate(&path, 4096);
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => panic!("EOF instead of an error"),
            Ok(_) => continue,
            Err(e) => return e,
        }
    }
}

#[tokio::test]
async fn truncation_under_prefetched_pages_is_an_error_not_a_crash() {
    // The whole file is prefetched before the truncation: the copy itself
    // meets the missing pages (SIGBUS, absorbed by the guard).
    let err = read_after_truncation(StreamOptions::new().read_ahead(64 << 20)).await;
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn truncation_ahead_of_the_prefetcher_is_an_error_not_a_crash() {
    // Small windows: the prefetcher meets the missing pages (EFAULT).
    let options = StreamOptions::new()
        .read_ahead(64 << 10)
        .max_read_ahead(64 << 10);
    let err = read_after_truncation(options).await;
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn a_prefetcher_that_meets_the_end_of_a_truncated_file_hands_out_the_steps_it_did() {
    // One 8 MiB window, populated 1 MiB at a time: the first steps are in,
    // the one past the new end fails. The reader gets the bytes of the
    // steps that were done, then the error, not the error alone.
    let dir = tempfile::tempdir().unwrap();
    // Cold, so the window goes through the job, not `mincore`.
    let (path, data) = cold_pattern_file(dir.path(), 8 << 20);
    let map = open(&path);
    let cut = (2 << 20) + 100;
    truncate(&path, cut);
    let options = StreamOptions::new().read_ahead(8 << 20);
    let mut stream = map.stream_with(.., &options).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let err = loop {
        match stream.read(&mut buf).await {
            Ok(0) => panic!("EOF instead of an error"),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    assert_eq!(out.len(), 2 << 20, "the two whole steps below the cut");
    assert_eq!(out, &data[..out.len()]);
}

#[tokio::test]
async fn a_poisoned_stream_keeps_failing_after_a_seek_back() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = pattern_file(dir.path(), 4 << 20);
    let map = open(&path);
    let mut stream = map
        .stream_with(.., &StreamOptions::new().read_ahead(8 << 20))
        .unwrap();
    let mut buf = vec![0u8; 8192];
    stream.read_exact(&mut buf).await.unwrap();
    truncate(&path, 0);
    assert!(stream.read_exact(&mut buf).await.is_err());
    stream.seek(SeekFrom::Start(0)).await.unwrap();
    let err = stream.read_exact(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
}

#[test]
fn dropping_a_stream_ends_its_background_work() {
    let dir = tempfile::tempdir().unwrap();
    let len = 16 << 20;
    let (path, _) = cold_pattern_file(dir.path(), len);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let map = open(&path);
    let mut stream = {
        let _guard = runtime.enter();
        map.stream_with(.., &StreamOptions::new().read_ahead(4 << 20))
            .unwrap()
    };
    let watch = stream.background();
    let mut buf = [0u8; 100];
    let mut read = tokio_test::task::spawn(stream.read(&mut buf));
    let paused = Pager::current().pause();
    assert_pending!(read.poll()); // a job is queued now
    drop(read);
    assert!(!watch.is_finished());
    drop(stream);
    drop(paused);
    eventually("the background work ends with the stream", || {
        watch.is_finished()
    });
    // Nothing was prefetched past the window in flight at the drop.
    std::thread::sleep(Duration::from_millis(50));
    assert!(resident_pages(&path, 8 << 20..len) == 0);
}

#[test]
fn a_stream_dropped_while_its_job_waits_leaves_the_pager_working() {
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = cold_pattern_file(dir.path(), 8 << 20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let map = open(&path);
    let mut stream = {
        let _guard = runtime.enter();
        map.stream(..).unwrap()
    };
    let watch = stream.background();
    let mut buf = [0u8; 100];
    {
        let paused = Pager::current().pause();
        let mut read = tokio_test::task::spawn(stream.read(&mut buf));
        assert_pending!(read.poll()); // its job (and the job's hint) queued
        drop(read);
        drop(stream); // the queued job and hint now hold the last region
        drop(paused);
    }
    eventually("the background work ends with the stream", || {
        watch.is_finished()
    });
    // The pager still serves other streams. On a thread of its own: a
    // deadlocked pager would hang it, and this test must fail, not hang.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let page = runtime.block_on(async {
            let mut stream = map.stream(..4096).unwrap();
            let mut page = vec![0u8; 4096];
            stream.read_exact(&mut page).await.map(|_| page)
        });
        let _ = tx.send(page);
    });
    let page = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the pager hung");
    assert_eq!(page.unwrap(), data[..4096]);
}

/// The scheduling policies of the pager's threads in this process.
fn pager_policies() -> Vec<libc::c_int> {
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let tid: libc::pid_t = task.file_name().to_str()?.parse().ok()?;
            (name.trim_end() == "mapview-pager").then_some(tid)
        })
        // SAFETY: sched_getscheduler only reads the policy of a thread id;
        // one that has exited since gives -1.
        .map(|tid| unsafe { libc::sched_getscheduler(tid) })
        .filter(|&policy| policy != -1)
        .collect()
}

#[test]
fn background_jobs_run_on_pager_threads_under_sched_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = cold_pattern_file(dir.path(), 8 << 20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let map = open(&path);
    let stream = {
        let _guard = runtime.enter();
        map.stream_with(.., &StreamOptions::new().read_ahead(4 << 20))
            .unwrap()
    };
    let watch = stream.background();
    let mut chunks = tokio_test::task::spawn(stream.chunks(4096));
    // A thread is named when it starts, and switches its policy first
    // thing after: each is seen under SCHED_BATCH soon after it shows.
    eventually("the pager's threads run under SCHED_BATCH", || {
        let _ = chunks.poll_next(); // keep the jobs coming
        let policies = pager_policies();
        !policies.is_empty() && policies.iter().all(|&policy| policy == libc::SCHED_BATCH)
    });
    drop(chunks);
    eventually("the background work ends with the stream", || {
        watch.is_finished()
    });
    // tokio's blocking pool is left alone.
    let policy = runtime.block_on(runtime.spawn_blocking(|| {
        // SAFETY: pid 0 is the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }));
    assert_eq!(policy.unwrap(), libc::SCHED_OTHER);
}

#[tokio::test]
async fn seeking_before_the_start_is_invalid_input_and_past_the_end_reads_eof() {
    let map = MappedFile::anonymous(10_000).unwrap();
    let mut stream = map.stream(100..200).unwrap();
    let err = stream.seek(SeekFrom::Current(-1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = stream.seek(SeekFrom::End(-101)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(stream.position(), 0);
    assert_eq!(stream.seek(SeekFrom::End(50)).await.unwrap(), 150);
    let mut buf = [0u8; 10];
    assert_eq!(stream.read(&mut buf).await.unwrap(), 0);
    assert!(stream.fill_buf().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_stream_arguments_are_clear_errors() {
    let map = MappedFile::anonymous(10_000).unwrap();
    for err in [
        map.stream(10_001..).unwrap_err(),
        map.stream(..10_001).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    let mut chunks = map.stream(..).unwrap().chunks(0);
    let err = chunks.try_next().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(chunks.try_next().await.unwrap().is_none());
}

#[test]
fn stream_outside_a_runtime_is_an_error_not_a_panic() {
    let map = MappedFile::anonymous(100).unwrap();
    let err = map.stream(..).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

#[test]
fn stream_types_are_send_and_unpin() {
    fn check<T: Send + Unpin>() {}
    fn check_sync<T: Sync>() {}
    check::<ViewStream>();
    check_sync::<ViewStream>();
    check::<mapview::Chunks>();
    check_sync::<mapview::BackgroundWatch>();
    check_sync::<mapview::StreamStats>();
}

const HOT_LEN: usize = 64 << 20;

/// A map of a file of `HOT_LEN` bytes whose pages are all in memory, and a
/// `current_thread` runtime to read it on.
fn hot_map_on_current_thread(dir: &std::path::Path) -> (MappedFile, tokio::runtime::Runtime) {
    let (path, _) = pattern_file(dir, HOT_LEN);
    std::fs::read(&path).unwrap(); // hot: every read is Ready at once
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (open(&path), runtime)
}

/// A stream of the whole map, mapped and made resident up front (a stream
/// maps nothing until then): never a stall.
fn hot_stream(map: &MappedFile) -> ViewStream {
    let options = StreamOptions::new().read_ahead(HOT_LEN as u64);
    let mut stream = map.stream_with(.., &options).unwrap();
    stream.prefetch_blocking(HOT_LEN as u64).unwrap(); // hot pages: quick
    stream
}

#[test]
fn a_stream_that_yields_is_woken_only_after_the_runtime_ran_its_timers() {
    let dir = tempfile::tempdir().unwrap();
    let (map, runtime) = hot_map_on_current_thread(dir.path());
    runtime.block_on(tokio::task::unconstrained(async {
        let mut stream = hot_stream(&map);
        let mut buf = vec![0u8; 4096];
        let mut read = tokio_test::task::spawn(());
        // Read until the stream's time slice is used up and it yields.
        let yielded = loop {
            let mut out = tokio::io::ReadBuf::new(&mut buf);
            let poll = read.enter(|cx, _| {
                tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut stream), cx, &mut out)
            });
            match poll {
                std::task::Poll::Pending => break true,
                std::task::Poll::Ready(r) if out.filled().is_empty() => break r.is_err(),
                std::task::Poll::Ready(r) => r.unwrap(),
            }
        };
        assert!(yielded, "a hot stream never yielded");
        // Woken at once, a spawned reader would go straight back into the run
        // queue, ahead of the timers that are due.
        assert!(!read.is_woken(), "woken before the runtime ran its driver");
        tokio::task::yield_now().await; // the runtime polls its driver
        assert!(read.is_woken(), "never woken after yielding");
    }));
}

/// The CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill in.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(ret, 0);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

#[test]
fn a_hot_stream_yields_to_the_other_tasks_of_its_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (map, runtime) = hot_map_on_current_thread(dir.path());
    let (ticks, elapsed) = runtime.block_on(async {
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            }
        });
        tokio::task::yield_now().await;
        let before = ticks.load(std::sync::atomic::Ordering::Relaxed);
        let mut stream = hot_stream(&map);
        // 1 MiB reads: tokio's budget alone (128 polls) would let this task
        // read all 64 MiB without letting the ticker run once.
        let mut buf = vec![0u8; 1 << 20];
        // The thread's CPU time, not the wall clock: on a loaded machine the
        // thread waits for a CPU, and neither task runs meanwhile.
        let start = thread_cpu_time();
        while stream.read(&mut buf).await.unwrap() > 0 {}
        let elapsed = thread_cpu_time() - start;
        ticker.abort();
        (
            ticks.load(std::sync::atomic::Ordering::Relaxed) - before,
            elapsed,
        )
    });
    // A yield every 0.5 ms of reading; allow for a slow, loaded machine.
    let expected = (elapsed.as_micros() / 2000) as usize;
    assert!(
        ticks >= 2 && ticks >= expected,
        "the other task ran {ticks} times in {elapsed:?}"
    );
}

#[test]
fn prefetched_pages_evicted_before_the_reader_gets_there_are_prefetched_again_off_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let len = 4 << 20;
    let (path, data) = cold_pattern_file(dir.path(), len);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let map = open(&path);
    let mut stream = {
        let _guard = runtime.enter();
        let window = StreamOptions::new().read_ahead(len as u64);
        map.stream_with(.., &window).unwrap()
    };
    // The reader stops where a step (1 MiB) ends: it checks the pages of
    // each step as it enters it.
    let step = 1 << 20;
    // How far a job reads ahead depends on the share of the read-ahead
    // budget, which a thousand other streams would cut to a step.
    let _alone = MANY_STREAMS.blocking_lock();
    let mut first = vec![0u8; step];
    runtime.block_on(stream.read_exact(&mut first)).unwrap();
    // (Pages behind the cursor may have been released meanwhile: the other
    // tests' streams share the read-ahead budget.)
    eventually("the rest of the file is prefetched", || {
        common::mapped_pages(&path, step..len) == (len - step) / 4096
    });

    // Memory pressure takes the prefetched pages before the reader comes
    // (again, should the job's last touches have brought some back).
    eventually("the pages ahead stay evicted", || {
        common::evict_mapped(&path);
        std::thread::sleep(Duration::from_millis(20));
        resident_pages(&path, step..len) == 0
    });
    let faults = common::major_faults_of_this_thread();
    let mut rest = vec![0u8; len - step];
    {
        let mut read = tokio_test::task::spawn(stream.read_exact(&mut rest));
        {
            let _paused = Pager::current().pause();
            // The reader notices and waits for the pager, rather than
            // fault the pages in from the disk on this thread.
            assert_pending!(read.poll());
        }
        eventually("the pager prefetches them again", || read.is_woken());
        while read.poll().is_pending() {
            eventually("the next step", || read.is_woken());
        }
    }
    assert_eq!(common::major_faults_of_this_thread() - faults, 0);
    assert!(first == data[..step]);
    assert!(rest == data[step..]);
    assert!(stream.stats().evictions >= 1);
}

/// Held by a test with many streams, and by one whose stream must have a
/// large share of the read-ahead budget.
static MANY_STREAMS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn making_streams_maps_nothing_and_they_read_once_polled() {
    const STREAMS: usize = 1000;
    let _many = MANY_STREAMS.lock().await;
    const EACH: usize = 10_000; // not page-aligned: streams share pages
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = pattern_file(dir.path(), STREAMS * EACH);
    let map = open(&path);
    let streams: Vec<ViewStream> = (0..STREAMS)
        .map(|i| map.stream((i * EACH) as u64..((i + 1) * EACH) as u64))
        .collect::<Result<_, _>>()
        .unwrap();
    // `mmap` on this thread could wait behind the pager's populates.
    assert_eq!(mappings_of(&path).len(), 0, "a stream mapped on creation");

    let reads = streams.into_iter().map(|mut stream| async move {
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.map(|_| out)
    });
    let outs = futures::future::try_join_all(reads).await.unwrap();
    for (i, out) in outs.iter().enumerate() {
        assert!(out[..] == data[i * EACH..(i + 1) * EACH], "stream {i}");
    }
}

#[tokio::test]
async fn a_stream_over_a_sparse_terabyte_maps_only_windows_near_its_cursor() {
    const TIB: u64 = 1 << 40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.bin");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(TIB).unwrap();
    let marks = [0, (1 << 30) + 5, (1 << 39) + 12_345, TIB - 100];
    for (i, &at) in marks.iter().enumerate() {
        std::os::unix::fs::FileExt::write_all_at(&file, format!("mark {i}").as_bytes(), at)
            .unwrap();
    }
    let map = open(&path);
    let max_read_ahead = 8 << 20;
    let options = StreamOptions::new().max_read_ahead(max_read_ahead);
    let window = 64 << 20; // at least 64 MiB, 4 x the read-ahead otherwise
    let mut stream = map.stream_with(.., &options).unwrap();
    assert_eq!(stream.len(), TIB);
    for (i, &at) in marks.iter().enumerate() {
        stream.seek(SeekFrom::Start(at)).await.unwrap();
        let mut mark = [0u8; 6];
        stream.read_exact(&mut mark).await.unwrap();
        assert_eq!(mark, *format!("mark {i}").as_bytes());
        // The cursor's window and the next, once windows left behind are
        // unmapped (on the pager: they are large).
        eventually("windows left behind are unmapped", || {
            mapped_bytes(&path) <= 2 * window + 2 * 4096
        });
    }
}

#[tokio::test]
async fn reads_across_window_boundaries_return_the_right_bytes() {
    const WINDOW: usize = 64 << 10;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = pattern_file(dir.path(), 10 * WINDOW + 1000);
    let map = open(&path);
    let options = StreamOptions::new().map_window(WINDOW as u64);
    let stream = || map.stream_with(1..1 + 9 * WINDOW as u64, &options).unwrap();
    let data = &data[1..1 + 9 * WINDOW];

    // A read stops at the end of the cursor's window.
    let mut cut = stream();
    cut.seek(SeekFrom::Start(WINDOW as u64 - 10)).await.unwrap();
    let mut buf = vec![0u8; 100];
    assert_eq!(cut.read(&mut buf).await.unwrap(), 10);

    let mut reads = stream();
    let mut out = vec![0u8; data.len()];
    for piece in out.chunks_mut(100_000) {
        reads.read_exact(piece).await.unwrap();
    }
    assert!(out == data, "read_exact across windows");
    // Back into a window already let go of.
    reads.seek(SeekFrom::Start(100)).await.unwrap();
    reads.read_exact(&mut buf).await.unwrap();
    assert!(buf[..] == data[100..200]);

    let chunks: Vec<bytes::Bytes> = stream().chunks(50_000).try_collect().await.unwrap();
    assert!(chunks.concat() == data, "chunks across windows");

    let mut lent = stream();
    let mut out = Vec::new();
    loop {
        let buf = lent.fill_buf().await.unwrap();
        if buf.is_empty() {
            break;
        }
        assert!(buf.len() <= WINDOW);
        out.extend_from_slice(buf);
        let len = buf.len();
        lent.consume(len);
    }
    assert!(out == data, "fill_buf across windows");
}

/// This process's address space in bytes (`VmSize`).
fn address_space() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

#[test]
fn a_window_that_cannot_be_mapped_fails_the_first_poll_not_the_creation() {
    const ENTRY: &str = "a_window_that_cannot_be_mapped_fails_the_first_poll_not_the_creation";
    const LEN: u64 = 4 << 30;
    let Some((_, path)) = common::child_role() else {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse.bin");
        std::fs::File::create(&path).unwrap().set_len(LEN).unwrap();
        common::run_child(ENTRY, "map", path.to_str().unwrap());
        return;
    };
    // In a child: its address space is limited below a window of the file.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let map = open(std::path::Path::new(&path));
    runtime.block_on(async {
        // Start the pager's threads while there is room for their stacks.
        let mut warm = map.stream(..4096).unwrap();
        warm.read_exact(&mut [0; 4096]).await.unwrap();
        let limit = address_space() + (1 << 30);
        let rlimit = libc::rlimit {
            rlim_cur: limit,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: a valid rlimit; lowering our own soft limit is harmless.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlimit) }, 0);

        let whole = StreamOptions::new().map_window(LEN);
        let mut stream = map.stream_with(.., &whole).unwrap(); // maps nothing
        let err = stream.read_exact(&mut [0; 10]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
        // In windows of the default size, the same range reads.
        let mut stream = map.stream(..).unwrap();
        stream.seek(SeekFrom::End(-10)).await.unwrap();
        stream.read_exact(&mut [0; 10]).await.unwrap();
    });
}
