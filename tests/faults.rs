//! Stream views when the file is truncated under them: errors are reported,
//! not lost, and memory handed out never crashes the process. Chunk streams
//! end for good, after an error as after their last chunk.

mod common;

use std::io::{ErrorKind, Write};

use futures::stream::{FusedStream, StreamExt};
use mapview::{MappedFile, StreamOptions, ViewStream};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use common::{child_role, pattern, pattern_file, run_child, truncate};

/// Asserts that `result` is the error of a truncated file.
fn assert_truncated<T: std::fmt::Debug>(result: std::io::Result<T>) {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
}

/// A stream over a new 4 MiB file that has written its first 2 MiB, and the
/// file's path.
async fn written_stream(dir: &std::path::Path) -> (std::path::PathBuf, ViewStream) {
    let path = dir.join("out.bin");
    let map = unsafe { MappedFile::create(&path, 4 << 20) }.unwrap();
    let mut stream = map.stream(..).unwrap();
    stream.write_all(&pattern(2 << 20)).await.unwrap();
    (path, stream)
}

/// Asserts that every flush and the shutdown fail with `UnexpectedEof`.
async fn assert_flushes_keep_failing(stream: &mut ViewStream) {
    for _ in 0..3 {
        assert_truncated(stream.flush().await);
    }
    assert_truncated(stream.shutdown().await);
}

#[tokio::test]
async fn flush_and_shutdown_keep_reporting_a_write_lost_to_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut stream) = written_stream(dir.path()).await;
    truncate(&path, 4096);
    assert_truncated(stream.write_all(&pattern(2 << 20)).await);
    assert_flushes_keep_failing(&mut stream).await;
    assert_truncated(stream.write(b"more").await);
}

#[tokio::test]
async fn a_flush_after_truncation_below_unflushed_bytes_fails_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut stream) = written_stream(dir.path()).await;
    truncate(&path, 4096);
    assert_flushes_keep_failing(&mut stream).await;
}

/// Where the children cut their 8 MiB file: inside a page, so the bytes
/// past it in that page are zeros from the kernel and the pages after it
/// are gone (a `SIGBUS` on the first touch).
const CUT: usize = 5000;

/// How many mappings the library's `SIGBUS` handler covers at once.
const COVER_SLOTS: usize = 16_384;

/// The children's side: each role truncates the file under memory the
/// stream lent out, reads all of it, and exits 0 only if that neither
/// crashed nor lied.
#[test]
fn child_entry() {
    let Some((role, path)) = child_role() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let data = std::fs::read(&path).unwrap();
        let mut expected = data.clone();
        expected[CUT..].fill(0);
        let map = unsafe { MappedFile::open(&path) }.unwrap();
        let options = StreamOptions::new().read_ahead(8 << 20);
        let mut stream = map.stream_with(.., &options).unwrap();
        match role.as_str() {
            "read-held-chunks" => {
                let mut chunks = stream.chunks(64 << 10);
                let mut held = Vec::new();
                while held.len() < 16 {
                    held.push(chunks.next().await.unwrap().unwrap());
                }
                truncate(path.as_ref(), CUT as u64);
                // A system call meets the lost pages first: EFAULT, no signal.
                let (mut socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
                let err = socket.write(&held[1]).unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::EFAULT), "{err}");
                let read: Vec<u8> = held
                    .iter()
                    .flat_map(|chunk| chunk.iter().copied())
                    .collect();
                assert!(read == expected[..read.len()], "lost bytes read as zeros");
                assert_truncated(chunks.next().await.unwrap());
            }
            "read-lent-buffer" => {
                let lent = stream.fill_buf().await.unwrap();
                assert!(lent.len() > CUT);
                truncate(path.as_ref(), CUT as u64);
                assert!(lent == &expected[..lent.len()], "lost bytes read as zeros");
                let len = lent.len();
                stream.consume(len);
                assert_truncated(stream.fill_buf().await);
            }
            "fill-the-cover-table" => {
                // The first 16,384 streams to lend memory are covered; the
                // next ones hand out copies, which a truncation cannot touch.
                let mut covered = Vec::new();
                for _ in 0..COVER_SLOTS {
                    let mut chunks = map.stream(..).unwrap().chunks(4096);
                    covered.push(chunks.next().await.unwrap().unwrap());
                }
                let copied = stream.fill_buf().await.unwrap().to_vec();
                let mut chunks = map.stream(..).unwrap().chunks(64 << 10);
                let chunk = chunks.next().await.unwrap().unwrap();
                truncate(path.as_ref(), 0);
                assert!(copied == data[..copied.len()], "fill_buf copied");
                assert!(chunk == data[..chunk.len()], "the chunk is a copy");
                assert!(covered[0].iter().all(|&b| b == 0), "lent, lost: zeros");
                assert_truncated(stream.fill_buf().await);
                assert_truncated(chunks.next().await.unwrap());
            }
            other => panic!("unknown child role {other}"),
        }
    });
}

/// Runs `role` in a child on a new 8 MiB file.
fn run_truncating_child(role: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = pattern_file(dir.path(), 8 << 20);
    run_child("child_entry", role, path.to_str().unwrap());
}

#[test]
fn held_chunks_of_a_truncated_file_read_zeros_and_the_next_chunk_is_an_error() {
    run_truncating_child("read-held-chunks");
}

#[test]
fn a_lent_buffer_of_a_truncated_file_reads_zeros_and_the_next_fill_is_an_error() {
    run_truncating_child("read-lent-buffer");
}

#[test]
fn streams_beyond_what_the_handler_covers_hand_out_copies() {
    run_truncating_child("fill-the-cover-table");
}

#[tokio::test]
async fn chunks_are_terminated_after_the_last_chunk_and_after_an_error() {
    let map = MappedFile::anonymous(10_000).unwrap();
    let mut chunks = map.stream(..).unwrap().chunks(4096);
    let mut total = 0;
    while !chunks.is_terminated() {
        if let Some(chunk) = chunks.next().await {
            total += chunk.unwrap().len();
        }
    }
    assert_eq!(total, 10_000);
    assert!(chunks.next().await.is_none());

    let mut chunks = map.stream(..).unwrap().chunks(0);
    assert!(!chunks.is_terminated());
    let err = chunks.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(chunks.is_terminated());
    assert!(chunks.next().await.is_none());
}

#[tokio::test]
async fn a_file_cut_inside_a_page_is_an_error_not_zeros_or_lost_writes() {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.bin");
    // SAFETY: the test's own file; it cuts it itself, below.
    let map = unsafe { MappedFile::create(&path, 8192) }.unwrap();
    map.view_mut(..).unwrap().fill(7);
    let mut reader = map.stream(..).unwrap();
    let mut writer = map.stream(..).unwrap();
    truncate(&path, 4097); // the second page stays, partly, in the file

    // No zeros past the new end behind an `Ok`.
    let mut all = Vec::new();
    let read = reader.read_to_end(&mut all).await;
    assert_truncated(read);
    assert!(
        all.iter().all(|&b| b == 7),
        "read bytes the file no longer has"
    );

    // No write past the new end that the file silently loses.
    writer.seek(std::io::SeekFrom::Start(4100)).await.unwrap();
    assert_truncated(writer.write(b"hello").await);
    assert_truncated(writer.flush().await);
}
