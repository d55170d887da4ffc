//! Stream views, write side: content on disk, durability across a crash,
//! backpressure, copy-on-write, shared memory and bad input.

mod common;

use std::future::poll_fn;
use std::io::{ErrorKind, SeekFrom};
use std::pin::Pin;
use std::task::Poll;

use mapview::{Access, MappedFile, StreamOptions, StreamStats, ViewStream};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

use common::{child_role, pattern, shm_name, spawn_child, wait_for_line, SmallFileSystem};

fn create(dir: &std::path::Path, len: u64) -> (std::path::PathBuf, MappedFile) {
    let path = dir.join("out.bin");
    let map = unsafe { MappedFile::create(&path, len) }.unwrap();
    (path, map)
}

#[tokio::test]
async fn written_bytes_are_on_disk_after_flush_at_odd_offsets_and_sizes() {
    for &(len, start) in &[(1usize, 0u64), (4095, 1), (4097, 4095), (1_000_003, 12_345)] {
        let dir = tempfile::tempdir().unwrap();
        let total = start + len as u64 + 777;
        let (path, map) = create(dir.path(), total);
        let data = pattern(len);
        let mut stream = map.stream(start..start + len as u64).unwrap();
        stream.write_all(&data).await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(stream.position(), len as u64);
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[start as usize..start as usize + len], &data[..]);
        assert!(on_disk[..start as usize].iter().all(|&b| b == 0));
        assert!(on_disk[start as usize + len..].iter().all(|&b| b == 0));
    }
}

#[tokio::test]
async fn writes_are_visible_to_views_and_reads_of_the_same_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (_path, map) = create(dir.path(), 100_000);
    let mut stream = map.stream(50_000..).unwrap();
    stream.write_all(b"hello, stream").await.unwrap();
    assert_eq!(&map.view(50_000..50_013).unwrap()[..], b"hello, stream");
    stream.seek(SeekFrom::Start(7)).await.unwrap();
    let mut word = [0u8; 6];
    stream.read_exact(&mut word).await.unwrap();
    assert_eq!(&word, b"stream");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn mixed_seeks_writes_and_reads_match_an_in_memory_model(
        len in 1usize..60_000,
        // Near the start of the file, and across a 2 MiB boundary, where
        // write-back splits its batches.
        start in prop_oneof![0u64..5000, (2 << 20) - 40_000u64..(2 << 20)],
        ops in prop::collection::vec((0u8..3, any::<u32>(), 1usize..9000), 1..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (path, map) = create(dir.path(), start + len as u64);
        let mut model = vec![0u8; len];
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let options = StreamOptions::new().read_ahead(8192).dirty_limit(16_384);
            let mut stream = map.stream_with(start.., &options).unwrap();
            let mut pos = 0usize;
            for (op, arg, size) in ops {
                match op {
                    0 => {
                        let data = vec![(arg % 251) as u8 + 1; size];
                        let n = stream.write(&data).await.unwrap();
                        let room = size.min(len.saturating_sub(pos));
                        prop_assert!(n <= room && (n > 0 || room == 0), "wrote {} of {}", n, room);
                        // After a seek past the end, pos > len and n == 0.
                        let at = pos.min(len);
                        model[at..at + n].copy_from_slice(&data[..n]);
                        pos += n;
                    }
                    1 => {
                        pos = arg as usize % (len + 10);
                        stream.seek(SeekFrom::Start(pos as u64)).await.unwrap();
                    }
                    _ => {
                        let mut buf = vec![0u8; size];
                        let n = stream.read(&mut buf).await.unwrap();
                        let at = pos.min(len);
                        prop_assert_eq!(&buf[..n], &model[at..at + n]);
                        pos += n;
                    }
                }
            }
            stream.flush().await.unwrap();
            prop_assert!(stream.stats().dirty_bytes == 0);
            Ok(())
        })?;
        let on_disk = std::fs::read(&path).unwrap();
        prop_assert_eq!(&on_disk[start as usize..], &model[..]);
    }
}

const CRASH_BYTES: usize = 8 << 20;

/// The child side of the crash test: write, flush, say so, wait to be killed.
#[test]
fn child_entry() {
    let Some((role, path)) = child_role() else {
        return;
    };
    assert_eq!(role, "write-flush-wait");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let map = unsafe { MappedFile::create(&path, CRASH_BYTES as u64) }.unwrap();
        let mut stream = map.stream(..).unwrap();
        stream.write_all(&pattern(CRASH_BYTES)).await.unwrap();
        stream.flush().await.unwrap();
        println!("flushed");
        std::future::pending::<()>().await;
    });
}

#[test]
fn flushed_bytes_survive_the_writer_being_killed() {
    let expected = pattern(CRASH_BYTES);
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crash.bin");
        let mut child = spawn_child("child_entry", "write-flush-wait", path.to_str().unwrap());
        wait_for_line(&mut child, "flushed");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert!(
            on_disk == expected,
            "round {round}: bytes lost after a flushed write"
        );
    }
}

/// Writes `data` over and over until `len` bytes are written, showing
/// `watch` each poll's result and the stream's stats right after it.
async fn write_watching(
    stream: &mut ViewStream,
    data: &[u8],
    len: u64,
    mut watch: impl FnMut(&Poll<std::io::Result<usize>>, StreamStats),
) {
    let mut written = 0u64;
    while written < len {
        let n = poll_fn(|cx| {
            let poll = Pin::new(&mut *stream).poll_write(cx, data);
            watch(&poll, stream.stats());
            poll
        })
        .await
        .unwrap();
        written += n as u64;
    }
}

#[tokio::test]
async fn a_fast_writer_is_held_back_at_the_dirty_limit() {
    let dir = tempfile::tempdir().unwrap();
    let len = 16 << 20;
    let limit = 512 << 10;
    let (path, map) = create(dir.path(), len);
    let options = StreamOptions::new().dirty_limit(limit);
    let mut stream = map.stream_with(.., &options).unwrap();
    let data = pattern(64 << 10);
    let (mut max_dirty, mut pending_at_limit) = (0u64, 0);
    write_watching(&mut stream, &data, len, |poll, stats| {
        max_dirty = max_dirty.max(stats.dirty_bytes);
        if poll.is_pending() && stats.dirty_bytes >= limit {
            pending_at_limit += 1;
        }
    })
    .await;
    stream.flush().await.unwrap();
    assert!(
        max_dirty <= limit,
        "dirty bytes reached {max_dirty} > {limit}"
    );
    assert!(pending_at_limit > 0, "the writer was never held back");
    assert!(stream.stats().flushed_bytes >= len - limit);
    assert_eq!(stream.stats().dirty_bytes, 0);
    let on_disk = std::fs::read(&path).unwrap();
    assert!(on_disk.chunks(data.len()).all(|c| c == &data[..]));
}

#[tokio::test]
async fn a_writer_at_the_dirty_limit_resumes_a_step_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let len = 128 << 20;
    let limit = 16 << 20; // write-back batches of a quarter: 4 MiB
    let (_path, map) = create(dir.path(), len);
    let options = StreamOptions::new().dirty_limit(limit);
    let mut stream = map.stream_with(.., &options).unwrap();
    let data = pattern(8 << 20);
    let (mut waited, mut smallest_room) = (false, u64::MAX);
    write_watching(&mut stream, &data, len, |poll, stats| match poll {
        Poll::Pending => waited |= stats.dirty_bytes >= limit,
        Poll::Ready(Ok(n)) if std::mem::take(&mut waited) => {
            // What the write found free: its own bytes, plus what was
            // left, which can only have grown since.
            let left = limit.saturating_sub(stats.dirty_bytes);
            smallest_room = smallest_room.min(*n as u64 + left);
        }
        Poll::Ready(_) => {}
    })
    .await;
    stream.flush().await.unwrap();
    assert!(
        smallest_room < 4 << 20,
        "a writer held back resumed only when a whole batch was on the disk \
         (smallest room {smallest_room})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_large_stream_dropped_unflushed_is_unmapped_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let len = 32 << 20; // large enough to be torn down off the worker
    let (path, map) = create(dir.path(), len);
    let data = pattern(len as usize);
    let mut stream = map.stream(..).unwrap();
    stream.write_all(&data).await.unwrap();
    let name = path.to_str().unwrap().to_owned();
    let mapped = move || {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines().any(|line| line.ends_with(&name))
    };
    assert!(mapped());
    drop(stream);
    drop(map);
    tokio::task::spawn_blocking(move || {
        common::eventually("the stream's mapping is gone", || !mapped())
    })
    .await
    .unwrap();
    assert!(std::fs::read(&path).unwrap() == data, "written bytes lost");
}

#[tokio::test]
async fn write_back_unmaps_the_pages_behind_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let len = 32 << 20;
    let limit = 8 << 20;
    let (path, map) = create(dir.path(), len as u64);
    let options = StreamOptions::new().dirty_limit(limit);
    let mut stream = map.stream_with(.., &options).unwrap();
    stream.write_all(&pattern(len)).await.unwrap();
    // At most `limit` bytes are not yet written back, so every job for the
    // bytes before that has run, and unmapped them.
    let clean = len - limit as usize - (2 << 20);
    assert_eq!(common::mapped_pages(&path, 0..clean), 0);
    stream.flush().await.unwrap();
    assert_eq!(common::mapped_pages(&path, 0..len), 0);
}

#[tokio::test]
async fn rewrites_after_seeking_back_over_written_back_bytes_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let len = 12 << 20;
    let (path, map) = create(dir.path(), len as u64);
    let options = StreamOptions::new().dirty_limit(2 << 20);
    let mut stream = map.stream_with(.., &options).unwrap();
    let mut model = pattern(len);
    stream.write_all(&model).await.unwrap();
    let stalls = stream.stats().stalls;
    for (at, len, byte) in [((1 << 20) + 123, 5 << 20, 0xB0), (9 << 20, 100_000, 0xC0)] {
        stream.seek(SeekFrom::Start(at as u64)).await.unwrap();
        for piece in vec![byte; len].chunks(64 << 10) {
            stream.write_all(piece).await.unwrap();
        }
        model[at..at + len].fill(byte);
    }
    // Each seek back waits for the pages there once, not once per write.
    let stalls = stream.stats().stalls - stalls;
    assert!(stalls <= 8, "{stalls} stalls for two seeks");
    stream.seek(SeekFrom::Start(0)).await.unwrap();
    let mut back = vec![0u8; len];
    stream.read_exact(&mut back).await.unwrap();
    assert!(back == model, "the stream reads back what it wrote");
    stream.flush().await.unwrap();
    assert!(std::fs::read(&path).unwrap() == model, "the file holds it");
}

#[tokio::test]
async fn writes_to_a_sparse_file_on_a_full_file_system_fail_with_storage_full() {
    let Some(fs) = SmallFileSystem::mount(1 << 20) else {
        eprintln!("skipped: mounting a small tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    };
    // Sparse: longer than the file system has room for.
    let path = fs.path().join("sparse.bin");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    let map = unsafe { MappedFile::options().access(Access::ReadWrite).open(&path) }.unwrap();
    let mut stream = map.stream(..).unwrap();
    let data = pattern(4 << 20);
    let err = stream.write_all(&data).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
    let written = stream.position() as usize;
    assert!(written > 0 && written < data.len(), "wrote {written}");
    stream.flush().await.unwrap(); // what fit is kept
    drop((stream, map));
    let on_disk = std::fs::read(&path).unwrap();
    assert!(on_disk[..written] == data[..written]);
}

#[tokio::test]
async fn copy_on_write_streams_never_change_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let original = pattern(100_000);
    let path = dir.path().join("cow.bin");
    std::fs::write(&path, &original).unwrap();
    let map = unsafe {
        MappedFile::options()
            .access(Access::CopyOnWrite)
            .open(&path)
    }
    .unwrap();
    let mut stream = map.stream(1000..).unwrap();
    stream.write_all(&[0xAA; 50_000]).await.unwrap();
    stream.shutdown().await.unwrap();
    stream.seek(SeekFrom::Start(0)).await.unwrap();
    let mut back = vec![0u8; 50_000];
    stream.read_exact(&mut back).await.unwrap();
    assert!(
        back.iter().all(|&b| b == 0xAA),
        "the stream sees its own writes"
    );
    drop((stream, map));
    assert!(std::fs::read(&path).unwrap() == original);
}

#[tokio::test]
async fn shared_memory_streams_write_to_every_holder_and_flush_at_once() {
    let name = shm_name("stream");
    let writer = unsafe { MappedFile::create_shared(&name, 1 << 20) }.unwrap();
    let reader = unsafe { MappedFile::open_shared(&name) }.unwrap();
    let mut stream = writer.stream(4096..).unwrap();
    stream.write_all(b"through shared memory").await.unwrap();
    stream.flush().await.unwrap();
    assert_eq!(
        &reader.view(4096..4117).unwrap()[..],
        b"through shared memory"
    );
    assert_eq!(stream.stats().dirty_bytes, 0);
}

#[tokio::test]
async fn writes_to_read_only_maps_are_permission_denied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.bin");
    std::fs::write(&path, pattern(5000)).unwrap();
    let map = unsafe { MappedFile::open(&path) }.unwrap();
    let mut stream = map.stream(..).unwrap();
    let err = stream.write(b"no").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    stream.flush().await.unwrap(); // nothing written, nothing to flush
}

#[tokio::test]
async fn writes_at_the_end_return_zero_and_write_all_fails_with_write_zero() {
    let map = MappedFile::anonymous(10_000).unwrap();
    let mut stream = map.stream(9990..).unwrap();
    assert_eq!(stream.write(&[1; 30]).await.unwrap(), 10);
    assert_eq!(stream.write(&[1; 30]).await.unwrap(), 0);
    stream.seek(SeekFrom::Start(5)).await.unwrap();
    let err = stream.write_all(&[2; 30]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WriteZero);
    stream.seek(SeekFrom::End(100)).await.unwrap();
    assert_eq!(stream.write(&[3; 30]).await.unwrap(), 0);
}

#[tokio::test]
async fn writes_after_shutdown_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, map) = create(dir.path(), 10_000);
    let mut stream = map.stream(..).unwrap();
    stream.write_all(b"last words").await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(&std::fs::read(&path).unwrap()[..10], b"last words");
    let err = stream.write(b"more").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
}

#[tokio::test]
async fn writes_across_window_boundaries_land_and_flush_durably() {
    const WINDOW: usize = 64 << 10;
    let dir = tempfile::tempdir().unwrap();
    let len = 20 * WINDOW;
    let (path, map) = create(dir.path(), len as u64 + 3);
    let options = StreamOptions::new()
        .map_window(WINDOW as u64)
        .dirty_limit(4 * WINDOW as u64);
    let mut stream = map.stream_with(3.., &options).unwrap();
    // A write stops at the end of the cursor's window.
    stream
        .seek(SeekFrom::Start(WINDOW as u64 - 10))
        .await
        .unwrap();
    assert_eq!(stream.write(&[1; 100]).await.unwrap(), 10);

    stream.seek(SeekFrom::Start(0)).await.unwrap();
    let data = pattern(len);
    for piece in data.chunks(100_000) {
        stream.write_all(piece).await.unwrap();
    }
    // Back into a window already let go of: its bytes are flushed too.
    stream.seek(SeekFrom::Start(5)).await.unwrap();
    stream.write_all(b"again").await.unwrap();
    stream.flush().await.unwrap();
    let mut expected = data;
    expected[5..10].copy_from_slice(b"again");
    assert!(std::fs::read(&path).unwrap()[3..] == expected[..]);
    assert_eq!(stream.stats().dirty_bytes, 0);
}

#[tokio::test]
async fn a_write_stream_maps_nothing_until_its_first_write() {
    let dir = tempfile::tempdir().unwrap();
    let (path, map) = create(dir.path(), 1 << 20);
    let mut stream = map.stream(4096..).unwrap();
    assert!(common::mappings_of(&path).is_empty(), "mapped on creation");
    stream.write_all(b"hello").await.unwrap(); // mapped on the pager
    assert_eq!(common::mappings_of(&path).len(), 1);
    stream.flush().await.unwrap();
    assert_eq!(&std::fs::read(&path).unwrap()[4096..4101], b"hello");
}
