//! A reading stream gives back what it has consumed: the pages behind its
//! cursor leave its mapping (so memory is bounded by the window, not the
//! file), never while a zero-copy `Bytes` of it is alive, and with
//! `drop_behind` they leave the page cache too; the release never waits
//! behind the pager's jobs.

mod common;

use common::{eventually, mapped_bytes, mapped_pages, mappings_of, pattern_file, resident_pages};
use futures::TryStreamExt;
use mapview::{MappedFile, Pager, StreamOptions, ViewStream};
use tokio::io::AsyncReadExt;

const MIB: usize = 1 << 20;
const LEN: usize = 64 * MIB;
const PAGE: usize = 4096;

/// Reads `len` bytes 64 KiB at a time, as a server or a copy loop does.
async fn read_in_small_reads(stream: &mut ViewStream, len: usize) -> Vec<u8> {
    let mut got = vec![0u8; len];
    for piece in got.chunks_mut(64 << 10) {
        stream.read_exact(piece).await.unwrap();
    }
    got
}

#[tokio::test]
async fn pages_behind_the_cursor_leave_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = pattern_file(dir.path(), LEN);
    // SAFETY: the test's own file; nothing truncates it.
    let map = unsafe { MappedFile::open(&path).unwrap() };
    let mut stream = map.stream(..).unwrap();
    let got = read_in_small_reads(&mut stream, 48 * MIB).await;
    assert!(got == data[..48 * MIB]);

    // All but the last step behind the cursor is gone from the mapping (on
    // the pager, right after the reads); the page cache keeps it, so
    // reading it again is a minor fault at most.
    eventually("the pages behind the cursor leave the mapping", || {
        mapped_pages(&path, 0..40 * MIB) == 0
    });
    assert_eq!(resident_pages(&path, 0..40 * MIB), 40 * MIB / PAGE);
    // Ahead of the cursor the window is still mapped.
    assert!(mapped_pages(&path, 48 * MIB..50 * MIB) > 0);
}

#[tokio::test]
async fn a_held_chunk_keeps_its_pages_until_it_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = pattern_file(dir.path(), LEN);
    // SAFETY: the test's own file; nothing truncates it.
    let map = unsafe { MappedFile::open(&path).unwrap() };
    let mut chunks = map.stream(..).unwrap().chunks(MIB);
    let first = chunks.try_next().await.unwrap().unwrap();
    assert!(first[..] == data[..MIB]); // reading it maps all its pages
    for _ in 1..48 {
        chunks.try_next().await.unwrap().unwrap();
    }
    // Far behind the cursor, the held chunk is still mapped and unchanged.
    assert_eq!(mapped_pages(&path, 0..MIB), MIB / PAGE);
    assert!(first[..] == data[..MIB]);

    drop(first);
    for _ in 48..64 {
        chunks.try_next().await.unwrap().unwrap();
    }
    assert!(chunks.try_next().await.unwrap().is_none());
    // With no chunk alive, the next step behind the cursor is released.
    eventually("the pages behind the cursor leave the mapping", || {
        mapped_pages(&path, 0..40 * MIB) == 0
    });
}

#[tokio::test]
async fn a_release_that_a_new_chunk_beat_is_made_again_later() {
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = pattern_file(dir.path(), LEN);
    // SAFETY: the test's own file; nothing truncates it.
    let map = unsafe { MappedFile::open(&path).unwrap() };
    let mut chunks = map.stream(..).unwrap().chunks(MIB);
    let pager = Pager::current();
    let held = {
        // The releases behind the cursor wait on the reclaim thread while
        // the next chunk is lent: a loan made after the stream checked.
        let _paused = pager.pause_reclaims();
        for i in 0..16 {
            // Reading a chunk maps its pages (a resident file's may be
            // lent before they are).
            let chunk = chunks.try_next().await.unwrap().unwrap();
            assert!(chunk[..] == data[i * MIB..(i + 1) * MIB]);
        }
        chunks.try_next().await.unwrap().unwrap()
    };
    pager.wait_for_reclaims();
    // The loan beat them: nothing was released under the live chunk.
    assert_eq!(mapped_pages(&path, 0..8 * MIB), 8 * MIB / PAGE);
    assert!(held[..] == data[16 * MIB..17 * MIB]);
    drop(held);
    while chunks.try_next().await.unwrap().is_some() {}
    // The next release behind the cursor starts where they gave up.
    eventually("the pages a loan kept leave the mapping", || {
        mapped_pages(&path, 0..40 * MIB) == 0
    });
}

#[tokio::test]
async fn drop_behind_also_drops_read_pages_from_the_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = pattern_file(dir.path(), LEN);
    // The page cache drops clean pages only: as a file written long ago.
    std::fs::File::open(&path).unwrap().sync_all().unwrap();
    // SAFETY: the test's own file; nothing truncates it.
    let map = unsafe { MappedFile::open(&path).unwrap() };
    let options = StreamOptions::new().drop_behind(true);
    let mut stream = map.stream_with(.., &options).unwrap();
    let got = read_in_small_reads(&mut stream, 48 * MIB).await;
    assert!(got == data[..48 * MIB]);
    eventually("the pages read are dropped from the page cache", || {
        resident_pages(&path, 0..40 * MIB) == 0
    });
}

#[tokio::test]
async fn a_window_left_behind_is_unmapped_once_no_chunk_of_it_is_alive() {
    const WINDOW: usize = MIB;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = pattern_file(dir.path(), 16 * WINDOW);
    // SAFETY: the test's own file; nothing truncates it.
    let map = unsafe { MappedFile::open(&path).unwrap() };
    let options = StreamOptions::new()
        .max_read_ahead(256 << 10)
        .map_window(WINDOW as u64);
    let mut chunks = map.stream_with(.., &options).unwrap().chunks(64 << 10);
    let first = chunks.try_next().await.unwrap().unwrap();
    while chunks.try_next().await.unwrap().is_some() {}
    // Windows the cursor left are unmapped, but for the one the held chunk
    // points into; its bytes are unchanged.
    let held = first.as_ptr() as usize;
    let maps_held = || mappings_of(&path).iter().any(|range| range.contains(&held));
    eventually("windows left behind are unmapped", || {
        mapped_bytes(&path) <= 2 * WINDOW + PAGE
    });
    assert!(maps_held(), "the held chunk's window was unmapped");
    assert!(first[..] == data[..64 << 10]);

    drop(first);
    eventually("the window of the dropped chunk is unmapped", || {
        !maps_held()
    });
    assert!(mapped_bytes(&path) <= WINDOW + PAGE);
}

#[tokio::test]
async fn pages_are_released_while_the_pagers_jobs_wait() {
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = pattern_file(dir.path(), LEN);
    // SAFETY: the test's own file; nothing truncates it.
    let map = unsafe { MappedFile::open(&path).unwrap() };
    let options = StreamOptions::new().read_ahead(32 * MIB as u64);
    let mut stream = map.stream_with(.., &options).unwrap();
    let mut got = read_in_small_reads(&mut stream, 32 * MIB).await;
    eventually("the next 16 MiB are prefetched", || {
        mapped_pages(&path, 32 * MIB..48 * MIB) == 16 * MIB / PAGE
    });

    // No job runs now: what the reader consumes from here on is released
    // by the pager's reclaim thread all the same, not behind the jobs.
    let _paused = Pager::current().pause();
    got.extend(read_in_small_reads(&mut stream, 16 * MIB).await);
    assert!(got == data[..48 * MIB]);
    let mut byte = [0u8; 1];
    let mut next = tokio_test::task::spawn(stream.read(&mut byte));
    let _ = next.poll(); // at 48 MiB: hands the release of what is behind
    eventually(
        "the pages read while the jobs wait leave the mapping",
        || mapped_pages(&path, 0..40 * MIB) == 0,
    );
}
