//! `mapview::pipe` against a hostile peer: one that truncates, regrows,
//! replaces or scribbles on the pipe's shared memory, or squats its name.
//! The scenarios on an open pipe run in a child process (this test binary,
//! re-run), where a `SIGBUS` or any other crash fails the test; the header
//! fuzz test runs in the test process, which a crash takes down as well.

mod common;

use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;

use common::{child_role, foreign_object, hold, run_child, shm_exists, shm_name, truncate};
use mapview::pipe::{self, PipeReader, PipeWriter};
use mapview::MappedFile;
use proptest::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// Offsets in the pipe header (see `src/pipe/ring.rs`).
const MAGIC_AT: u64 = 0;
const VERSION_AT: u64 = 8;
const CAPACITY_AT: u64 = 16;
const TOKEN_AT: u64 = 24;
const HEAD_AT: u64 = 64;
const TAIL_AT: u64 = 128;
const STATE_AT: u64 = 192;
const READER_WAITING_AT: u64 = 196;
const WRITER_WAITING_AT: u64 = 200;
/// The end marker of a ring of [`CAPACITY`] bytes: the page after the data.
const END_AT: u64 = 8192;

/// The capacity of the rings whose header the tests corrupt.
const CAPACITY: usize = 4096;
/// The bytes the writer sends through them.
const TOTAL: u64 = 200_000;

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
            "truncate-under-fill-buf" => {
                let (name, _writer, mut reader) = pipe_with_bytes("cut-lent", 65536, 1000).await;
                let lent = reader.fill_buf().await.unwrap();
                assert_eq!(lent, [7u8; 1000]);
                truncate(&object_path(&name), 0);
                // The slice's page is gone: it reads as zeros, no SIGBUS.
                assert!(lent.iter().all(|&b| b == 0));
                reader.consume(10);
                let err = reader.fill_buf().await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
            }
            "corrupt" => corrupt_while_open(&arg).await,
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
fn truncation_under_a_fill_buf_slice_reads_zeros_then_fails_not_a_crash() {
    run_child("child_entry", "truncate-under-fill-buf", "");
}

#[test]
fn dropping_both_ends_of_a_truncated_pipe_does_not_crash() {
    run_child("child_entry", "truncate-drop", "");
}

/// Byte `i` of the test stream: position-dependent, so that a byte from the
/// wrong place shows.
fn stream_byte(i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ i as u8
}

/// What a header field may do to an open pipe when a peer overwrites it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Read only when the pipe is opened: the open pipe carries on intact.
    None,
    /// The stream stops early (EOF or `BrokenPipe`), every byte before
    /// intact, or it carries on.
    Stops,
    /// The reader fails with `InvalidData`, every byte before intact, unless
    /// the writer publishes its own counter over the value before the
    /// reader looks (the stream then carries on intact).
    ReaderInvalidData,
    /// The writer fails with `InvalidData`; the reader gets an intact prefix.
    WriterInvalidData,
    /// Both ends fail with `InvalidData`, every byte before intact (or the
    /// writer with `BrokenPipe`, if the reader failed and left first).
    BothInvalidData,
}

/// Every header field, a hostile value for it and what it may do.
const FIELDS: &[(&str, u64, u64, Effect)] = &[
    ("magic", MAGIC_AT, 0xdead_beef, Effect::None),
    ("version", VERSION_AT, 0xffff_ffff_ffff_ffff, Effect::None),
    ("capacity", CAPACITY_AT, 1 << 40, Effect::None),
    ("token", TOKEN_AT, 42, Effect::None),
    ("head ahead", HEAD_AT, u64::MAX, Effect::ReaderInvalidData),
    ("head to zero", HEAD_AT, 0, Effect::ReaderInvalidData),
    ("tail ahead", TAIL_AT, u64::MAX, Effect::WriterInvalidData),
    ("tail to zero", TAIL_AT, 0, Effect::WriterInvalidData),
    ("state", STATE_AT, u32::MAX as u64, Effect::Stops),
    ("waiting flags", READER_WAITING_AT, u64::MAX, Effect::None),
    (
        "writer waiting",
        WRITER_WAITING_AT,
        u32::MAX as u64,
        Effect::None,
    ),
    ("end marker", END_AT, 0x0102_0304, Effect::BothInvalidData),
];

/// The child's side of [`corrupting_any_header_field_of_an_open_pipe_is_an_error_or_harmless`]:
/// `arg` is the index of the field in [`FIELDS`]. Sends [`TOTAL`] bytes,
/// overwrites the field a quarter of the way, and checks the outcome.
async fn corrupt_while_open(arg: &str) {
    let (what, at, value, effect) = FIELDS[arg.parse::<usize>().unwrap()];
    let name = shm_name("corrupt-live");
    let mut writer = pipe::create(&name, CAPACITY).unwrap();
    let mut reader = pipe::open(&name).unwrap();
    // SAFETY: the test plays the hostile peer; the pipe must cope.
    let hostile = unsafe { MappedFile::open_shared(&name) }.unwrap();
    assert_eq!(hostile.capacity(), END_AT + 8, "END_AT is out of date");
    let producer = tokio::spawn(async move {
        let bytes: Vec<u8> = (0..TOTAL).map(stream_byte).collect();
        for chunk in bytes.chunks(1000) {
            writer.write_all(chunk).await?;
        }
        writer.shutdown().await
    });
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1500];
    let ended = loop {
        if got.len() as u64 >= TOTAL / 4 && got.len() as u64 - (TOTAL / 4) < 1500 {
            hostile
                .view_mut(..)
                .unwrap()
                .write_value(at, &value)
                .unwrap();
        }
        match bounded(what, reader.read(&mut buf)).await {
            Ok(0) => break Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, &b)| b == stream_byte(i as u64)),
        "{what}: the reader returned bytes that were not written there"
    );
    drop(reader); // lets a producer that waits on a shutdown finish
    let produced = bounded(what, producer).await.unwrap();
    let kind = |r: &std::io::Result<()>| r.as_ref().err().map(std::io::Error::kind);
    match effect {
        Effect::None => {
            assert!(
                ended.is_ok() && produced.is_ok(),
                "{what}: {ended:?} {produced:?}"
            );
            assert_eq!(got.len() as u64, TOTAL, "{what}");
        }
        Effect::Stops => {
            let fine =
                |r: &std::io::Result<()>| matches!(kind(r), None | Some(ErrorKind::BrokenPipe));
            assert!(
                fine(&ended) && fine(&produced),
                "{what}: {ended:?} {produced:?}"
            );
        }
        Effect::ReaderInvalidData => match kind(&ended) {
            None => assert_eq!(got.len() as u64, TOTAL, "{what}"),
            other => assert_eq!(other, Some(ErrorKind::InvalidData), "{what}: {ended:?}"),
        },
        Effect::WriterInvalidData => match kind(&produced) {
            None => assert_eq!(got.len() as u64, TOTAL, "{what}"),
            other => assert_eq!(other, Some(ErrorKind::InvalidData), "{what}: {produced:?}"),
        },
        Effect::BothInvalidData => {
            assert_eq!(
                kind(&ended),
                Some(ErrorKind::InvalidData),
                "{what}: {ended:?}"
            );
            let writer = kind(&produced);
            assert!(
                matches!(writer, Some(ErrorKind::InvalidData | ErrorKind::BrokenPipe)),
                "{what}: {produced:?}"
            );
        }
    }
    drop(hostile);
    assert!(
        !shm_exists(&name),
        "{what}: the pipe's memory was left behind"
    );
}

#[test]
fn corrupting_any_header_field_of_an_open_pipe_is_an_error_or_harmless() {
    for (i, (what, ..)) in FIELDS.iter().enumerate() {
        println!("corrupting {what}");
        run_child("child_entry", "corrupt", &i.to_string());
    }
}

#[tokio::test]
async fn a_pipe_whose_name_was_replaced_carries_on_and_leaves_the_new_object_alone() {
    let name = shm_name("replaced");
    let mut writer = pipe::create(&name, 4096).unwrap();
    let mut reader = pipe::open(&name).unwrap();
    // Another process of the user removes the name and makes its own object.
    std::fs::remove_file(object_path(&name)).unwrap();
    // SAFETY: only this test uses the name.
    let impostor = unsafe { MappedFile::create_shared(&name, 8192) }.unwrap();
    let err = pipe::open(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");

    writer.write_all(b"still here").await.unwrap();
    let mut got = [0u8; 10];
    reader.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"still here");
    drop((writer, reader));
    assert!(shm_exists(&name), "the ends removed the impostor's name");
    drop(impostor);
    assert!(!shm_exists(&name));
}

/// Makes `/dev/shm/<name>` as another user (uid 65534) would, holding a
/// shared `flock` on it as a live holder does while `f` runs.
fn squatted(tag: &str, mode: u32, f: impl FnOnce(&str)) {
    let name = shm_name(tag);
    let squatter = foreign_object(&name, mode, END_AT + 8, Some(65534));
    hold(&squatter);
    f(&name);
    assert!(shm_exists(&name), "the squatter's object is left alone");
    std::fs::remove_file(object_path(&name)).unwrap();
}

#[tokio::test]
async fn a_pipe_name_squatted_by_another_user_is_refused_on_both_ends() {
    for mode in [0o600, 0o666] {
        squatted("squat", mode, |name| {
            let err = pipe::open(name).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
            let err = pipe::create(name, 4096).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        });
    }
}

#[tokio::test]
async fn open_wait_does_not_wait_out_a_squatter() {
    squatted("squat-wait", 0o666, |name| {
        let name = name.to_owned();
        let err = std::thread::spawn(move || {
            let rt = runtime();
            rt.block_on(pipe::open_wait(&name, Duration::from_secs(60)))
                .unwrap_err()
        })
        .join()
        .unwrap();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    });
}

/// A hostile write of random bytes into a live pipe's header: once the
/// reader has `after` bytes, `bytes` land at `at` (0..256: the header;
/// 256..264: the end marker).
#[derive(Debug, Clone)]
struct Poke {
    after: u64,
    at: u64,
    bytes: Vec<u8>,
}

impl Poke {
    /// Whether the poke touches a word the protocol relies on to move data
    /// (`head`, `tail`, `state`, the end marker), rather than one read only
    /// when the pipe opens, a waiting flag or padding.
    fn touches_the_protocol(&self) -> bool {
        let end = self.at + self.bytes.len() as u64;
        [
            HEAD_AT..HEAD_AT + 8,
            TAIL_AT..TAIL_AT + 8,
            STATE_AT..STATE_AT + 4,
            256..264,
        ]
        .iter()
        .any(|word| self.at < word.end && word.start < end)
    }

    /// Writes the bytes into the ring through the hostile map `map`.
    fn apply(&self, map: &MappedFile) {
        let end_marker = map.capacity() - 8;
        let at = if self.at < 256 {
            self.at
        } else {
            end_marker + self.at - 256
        };
        map.view_mut(..).unwrap().write_at(at, &self.bytes).unwrap();
    }
}

/// Pokes that stay inside the header, or inside the end marker.
fn poke() -> impl Strategy<Value = Poke> {
    (
        0..FUZZ_TOTAL,
        0u64..264,
        prop::collection::vec(any::<u8>(), 1..9),
    )
        .prop_map(|(after, at, mut bytes)| {
            let room = if at < 256 { 256 - at } else { 264 - at };
            bytes.truncate(room as usize);
            Poke { after, at, bytes }
        })
}

/// The bytes the writer sends in each case of the header fuzz test.
const FUZZ_TOTAL: u64 = 30_000;
/// How long a read may wait before the case counts as stalled: a peer that
/// clears a waiting flag can make both ends sleep, as one that stops
/// writing can, and that is no hang of ours as long as every poll returns.
const STALL: Duration = Duration::from_millis(300);

/// How a case of the header fuzz test ended for the reader.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Eof,
    Failed(ErrorKind),
    Stalled,
}

/// Sends [`FUZZ_TOTAL`] stream bytes through a pipe of `capacity` bytes in
/// writes of `1..=max_write` bytes while `pokes` scribble on its header;
/// returns what the reader got and how it ended.
async fn fuzz_case(capacity: usize, max_write: usize, pokes: &[Poke]) -> (Vec<u8>, Outcome) {
    let name = shm_name("fuzz");
    let mut writer = pipe::create(&name, capacity).unwrap();
    let mut reader = pipe::open(&name).unwrap();
    // SAFETY: the test plays the hostile peer; the pipe must cope.
    let hostile = unsafe { MappedFile::open_shared(&name) }.unwrap();
    let producer = tokio::spawn(async move {
        let bytes: Vec<u8> = (0..FUZZ_TOTAL).map(stream_byte).collect();
        for chunk in bytes.chunks(max_write) {
            writer.write_all(chunk).await?;
        }
        writer.shutdown().await
    });
    let mut pokes: Vec<&Poke> = pokes.iter().collect();
    pokes.sort_by_key(|p| std::cmp::Reverse(p.after));
    let mut got = Vec::new();
    let mut buf = vec![0u8; 777];
    let outcome = loop {
        while pokes.last().is_some_and(|p| p.after <= got.len() as u64) {
            pokes.pop().unwrap().apply(&hostile);
        }
        match tokio::time::timeout(STALL, reader.read(&mut buf)).await {
            Err(_) => break Outcome::Stalled,
            Ok(Ok(0)) => break Outcome::Eof,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => break Outcome::Failed(e.kind()),
        }
    };
    drop(reader);
    // A writer stalled by the pokes is dropped with the task.
    let _ = tokio::time::timeout(STALL, producer).await;
    drop(hostile);
    (got, outcome)
}

/// Whether `byte` is one the writer put into the ring slot of stream
/// position `pos` (in any lap), or the slot's initial zero.
fn written_in_slot(byte: u8, pos: u64, capacity: u64) -> bool {
    byte == 0
        || (pos % capacity..FUZZ_TOTAL)
            .step_by(capacity as usize)
            .any(|q| stream_byte(q) == byte)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random bytes written into the header of a live pipe never crash
    /// either end, never block a poll, and never make the reader return a
    /// byte that nobody wrote into the ring: with the protocol's words
    /// untouched, the stream even arrives intact (or stalls, if a waiting
    /// flag was cleared).
    #[test]
    fn random_header_bytes_never_crash_hang_or_forge_data(
        capacity in 1usize..3000,
        max_write in 1usize..2000,
        pokes in prop::collection::vec(poke(), 0..6),
    ) {
        let (got, outcome) = runtime().block_on(fuzz_case(capacity, max_write, &pokes));
        for (pos, &byte) in got.iter().enumerate() {
            prop_assert!(
                written_in_slot(byte, pos as u64, capacity as u64),
                "byte {pos} ({byte:#x}) was never written into its ring slot"
            );
        }
        if !pokes.iter().any(Poke::touches_the_protocol) {
            prop_assert!(got.iter().enumerate().all(|(i, &b)| b == stream_byte(i as u64)));
            match outcome {
                Outcome::Eof => prop_assert_eq!(got.len() as u64, FUZZ_TOTAL),
                Outcome::Stalled => {}
                Outcome::Failed(kind) => prop_assert!(false, "failed with {kind:?}"),
            }
        }
    }
}

/// Creates a pipe, lets `corrupt` scribble on its header through a plain
/// shared map, and returns the error of opening it.
async fn open_after(corrupt: impl FnOnce(&MappedFile)) -> std::io::Error {
    let name = shm_name("corrupt");
    let _writer = pipe::create(&name, 4096).unwrap();
    // SAFETY: the test means to corrupt the pipe; the pipe must cope.
    let map = unsafe { MappedFile::open_shared(&name) }.unwrap();
    corrupt(&map);
    pipe::open(&name).unwrap_err()
}

/// Overwrites the 8 bytes at `at` with `value`, as a hostile peer would.
fn write_word(map: &MappedFile, at: u64, value: u64) {
    map.view_mut(..).unwrap().write_value(at, &value).unwrap();
}

#[tokio::test]
async fn corrupt_headers_are_invalid_data() {
    let cases = [
        ("magic", MAGIC_AT, 0xdead_beef),
        ("version", VERSION_AT, 99),
        ("capacity", CAPACITY_AT, 1 << 20),
        ("zero capacity", CAPACITY_AT, 0),
        ("head far ahead", HEAD_AT, 1 << 40),
        ("tail past head", TAIL_AT, 5),
    ];
    for (what, at, value) in cases {
        let err = open_after(|m| write_word(m, at, value)).await;
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{what}: {err}");
    }
    let garbage = open_after(|m| {
        m.view_mut(..256).unwrap().fill(0xA5);
    })
    .await;
    assert_eq!(garbage.kind(), ErrorKind::InvalidData, "{garbage}");
}

#[tokio::test]
async fn shared_memory_that_is_not_a_pipe_is_invalid_data() {
    for size in [100, 8192] {
        let name = shm_name("not-a-pipe");
        // SAFETY: only this test uses the name.
        let _map = unsafe { MappedFile::create_shared(&name, size) }.unwrap();
        let err = pipe::open(&name).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    }
}

#[tokio::test]
async fn counters_corrupted_while_open_are_invalid_data_on_both_ends() {
    let name = shm_name("corrupt-live");
    let mut writer = pipe::create(&name, 4096).unwrap();
    let mut reader = pipe::open(&name).unwrap();
    // SAFETY: the test means to corrupt the pipe; the pipe must cope.
    let map = unsafe { MappedFile::open_shared(&name) }.unwrap();
    writer.write_all(b"abc").await.unwrap();
    write_word(&map, HEAD_AT, u64::MAX);
    let err = reader.read(&mut [0; 16]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    write_word(&map, TAIL_AT, 1 << 50);
    let err = writer.write_all(b"d").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
}
