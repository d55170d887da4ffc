//! `mapview::pipe` against a hostile peer: one that truncates, regrows,
//! replaces or scribbles on the pipe's shared memory, or squats its name.
//! Each scenario runs in a child process (this test binary, re-run), where
//! a `SIGBUS` or any other crash fails the test.

mod common;

use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;

use common::{child_role, run_child, shm_exists, shm_name, truncate};
use mapview::pipe::{self, PipeReader, PipeWriter};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// How long any one pipe operation may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn object_path(name: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(name)
}

/// Fails the test if `operation` takes longer than [`HANG`].
async fn bounded<T>(what: &str, operation: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, operation)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// A pipe of `capacity` bytes with both ends open and `pending` bytes
/// written but not yet read.
async fn pipe_with_bytes(
    tag: &str,
    capacity: usize,
    pending: usize,
) -> (String, PipeWriter, PipeReader) {
    let name = shm_name(tag);
    let mut writer = pipe::create(&name, capacity).unwrap();
    let reader = pipe::open(&name).unwrap();
    writer.write_all(&vec![7u8; pending]).await.unwrap();
    (name, writer, reader)
}

/// Reads, writes, flushes and shuts down both ends of a pipe whose shared
/// memory was damaged: each must fail with `kind`, the same error every
/// time, and dropping the ends must not crash.
async fn both_ends_fail_with(kind: ErrorKind, mut writer: PipeWriter, mut reader: PipeReader) {
    for attempt in 0..2 {
        let mut buf = [0u8; 2000];
        let read = bounded("read", reader.read(&mut buf)).await;
        let err = read.expect_err("a read of damaged shared memory returned data");
        assert_eq!(err.kind(), kind, "read {attempt}: {err}");
        let err = bounded("fill_buf", reader.fill_buf()).await.unwrap_err();
        assert_eq!(err.kind(), kind, "fill_buf {attempt}: {err}");
        let err = bounded("write", writer.write_all(&[1u8; 100])).await;
        let err = err.expect_err("a write into damaged shared memory returned Ok");
        assert_eq!(err.kind(), kind, "write {attempt}: {err}");
        let err = bounded("flush", writer.flush()).await.unwrap_err();
        assert_eq!(err.kind(), kind, "flush {attempt}: {err}");
    }
    let err = bounded("shutdown", writer.shutdown()).await.unwrap_err();
    assert_eq!(err.kind(), kind, "shutdown: {err}");
    drop(reader);
    drop(writer);
}

/// The children's side. `arg` is `len,regrow,capacity` for "truncate".
#[test]
fn child_entry() {
    let Some((role, arg)) = child_role() else {
        return;
    };
    let args: Vec<u64> = arg.split(',').filter_map(|a| a.parse().ok()).collect();
    runtime().block_on(async {
        match role.as_str() {
            "truncate" => {
                let (len, regrow, capacity) = (args[0], args[1] == 1, args[2] as usize);
                let (name, writer, reader) =
                    pipe_with_bytes("cut", capacity, 1000.min(capacity)).await;
                let path = object_path(&name);
                let full = std::fs::metadata(&path).unwrap().len();
                truncate(&path, len);
                if regrow {
                    truncate(&path, full);
                }
                both_ends_fail_with(ErrorKind::UnexpectedEof, writer, reader).await;
                assert!(
                    !shm_exists(&name),
                    "the damaged pipe's memory was left behind"
                );
            }
            "truncate-drop" => {
                let (name, writer, reader) = pipe_with_bytes("cut-drop", 65536, 1000).await;
                truncate(&object_path(&name), 0);
                drop(writer);
                drop(reader);
                assert!(!shm_exists(&name));
            }
            other => panic!("unknown child role {other}"),
        }
    });
}

/// Runs the truncation scenario in a child: cut the object to `len` bytes
/// (and grow it back if `regrow`) under a pipe of `capacity` bytes.
fn truncation(len: u64, regrow: bool, capacity: usize) {
    run_child(
        "child_entry",
        "truncate",
        &format!("{len},{},{capacity}", u8::from(regrow)),
    );
}

#[test]
fn truncation_to_zero_is_unexpected_eof_on_both_ends_not_a_crash() {
    truncation(0, false, 65536);
}

#[test]
fn truncation_inside_the_header_is_unexpected_eof_on_both_ends() {
    truncation(100, false, 65536);
}

#[test]
fn truncation_inside_the_first_data_page_is_unexpected_eof_not_zeros() {
    truncation(266, false, 65536);
    truncation(266, false, 2000); // the whole ring lies in the first page
}

#[test]
fn truncation_inside_the_data_is_unexpected_eof_on_both_ends() {
    truncation(8192, false, 65536);
    truncation(65536, false, 65536); // only the end marker's page goes
}

#[test]
fn truncation_and_regrowth_is_unexpected_eof_not_zeros() {
    for len in [0, 100, 266, 8192] {
        truncation(len, true, 65536);
    }
}

#[test]
fn dropping_both_ends_of_a_truncated_pipe_does_not_crash() {
    run_child("child_entry", "truncate-drop", "");
}
