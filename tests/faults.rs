//! Stream views when the file is truncated under them: errors are reported,
//! not lost, and memory handed out never crashes the process.

mod common;

use std::io::ErrorKind;

use mapview::{MappedFile, ViewStream};
use tokio::io::AsyncWriteExt;

use common::{pattern, truncate};

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
        let err = stream.flush().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    }
    let err = stream.shutdown().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
}

#[tokio::test]
async fn flush_and_shutdown_keep_reporting_a_write_lost_to_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut stream) = written_stream(dir.path()).await;
    truncate(&path, 4096);
    let err = stream.write_all(&pattern(2 << 20)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    assert_flushes_keep_failing(&mut stream).await;
    let err = stream.write(b"more").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
}

#[tokio::test]
async fn a_flush_after_truncation_below_unflushed_bytes_fails_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut stream) = written_stream(dir.path()).await;
    truncate(&path, 4096);
    assert_flushes_keep_failing(&mut stream).await;
}
