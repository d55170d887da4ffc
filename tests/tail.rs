//! Tail: following growing, truncated, renamed and deleted files.

mod common;

use std::io::{ErrorKind, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    append, child_role, eventually, mapped_bytes, mapped_pages, pattern_file, resident_pages,
    run_child, truncate,
};
use mapview::{Pager, Tail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};

type TailLines = Lines<Tail>;

fn follow(path: &Path, start: SeekFrom) -> TailLines {
    Tail::follow(path, start).unwrap().lines()
}

/// The next line, or a panic if none comes within 10 s.
async fn next_line(lines: &mut TailLines) -> String {
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("no line within 10 s")
        .unwrap()
        .expect("a tail never ends")
}

async fn expect_lines(lines: &mut TailLines, expected: impl IntoIterator<Item = String>) {
    for want in expected {
        assert_eq!(next_line(lines).await, want);
    }
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} line {i}")).collect()
}

fn joined(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[tokio::test]
async fn bursts_and_partial_lines_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "old line\n");
    let mut lines = follow(&path, SeekFrom::End(0));
    for burst in 0..20 {
        let batch = numbered(&format!("burst {burst}"), 0..burst * 7 + 1);
        append(&path, &joined(&batch));
        expect_lines(&mut lines, batch).await;
    }
    append(&path, "half a ");
    tokio::time::sleep(Duration::from_millis(30)).await;
    append(&path, "line\n");
    assert_eq!(next_line(&mut lines).await, "half a line");
}

#[tokio::test]
async fn start_positions_pick_where_reading_begins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "one\ntwo\nthree\n");
    let mut all = follow(&path, SeekFrom::Start(0));
    expect_lines(&mut all, ["one", "two", "three"].map(String::from)).await;
    let mut last = follow(&path, SeekFrom::End(-6));
    let mut from_current = follow(&path, SeekFrom::Current(4));
    append(&path, "four\n");
    expect_lines(&mut last, ["three", "four"].map(String::from)).await;
    expect_lines(
        &mut from_current,
        ["two", "three", "four"].map(String::from),
    )
    .await;
}

#[tokio::test]
async fn a_100_mib_append_is_read_completely() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.log");
    std::fs::write(&path, b"").unwrap();
    let mut tail = Tail::follow(&path, SeekFrom::Start(0)).unwrap();
    let line = format!("{}\n", "x".repeat(99));
    let total = 100 << 20;
    let writer = {
        let path = path.clone();
        let line = line.clone();
        std::thread::spawn(move || {
            let block = line.repeat(1 << 14);
            let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            for _ in 0..total / block.len() {
                file.write_all(block.as_bytes()).unwrap();
            }
        })
    };
    let mut read = vec![0u8; total / line.len() / (1 << 14) * (1 << 14) * line.len()];
    tokio::time::timeout(Duration::from_secs(60), tail.read_exact(&mut read))
        .await
        .expect("100 MiB within 60 s")
        .unwrap();
    writer.join().unwrap();
    assert!(read.chunks(line.len()).all(|l| l == line.as_bytes()));
}

#[tokio::test]
async fn a_tail_maps_its_file_on_the_pager_never_on_the_polling_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "first\n");
    // `mmap` waits for the process's memory-map lock behind every populate
    // in flight: with the pager held, neither following the file nor
    // polling it maps anything.
    let paused = Pager::current().pause();
    let mut lines = follow(&path, SeekFrom::Start(0));
    let mut next = tokio_test::task::spawn(lines.next_line());
    assert!(next.poll().is_pending());
    assert_eq!(mapped_bytes(&path), 0);
    drop(paused);
    let line = tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("a line once the pager runs");
    assert_eq!(line.unwrap().as_deref(), Some("first"));
    assert!(mapped_bytes(&path) > 0);
}

#[tokio::test]
async fn what_a_tail_has_read_leaves_its_mapping() {
    const MIB: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = pattern_file(dir.path(), 48 * MIB);
    let mut tail = Tail::follow(&path, SeekFrom::Start(0)).unwrap();
    let mut got = vec![0u8; 48 * MIB];
    for piece in got.chunks_mut(64 << 10) {
        tail.read_exact(piece).await.unwrap();
    }
    assert!(got == data);
    // Behind the cursor the pages leave the tail's mapping (the page cache
    // keeps them): a tail over a large log holds a window, not the log.
    eventually("the pages behind the cursor leave the mapping", || {
        mapped_pages(&path, 0..40 * MIB) == 0
    });
    assert_eq!(resident_pages(&path, 0..40 * MIB), 40 * MIB / 4096);
}

#[tokio::test]
async fn copytruncate_rotation_reads_on_from_the_new_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, &joined(&numbered("before", 0..50)));
    let mut lines = follow(&path, SeekFrom::Start(0));
    expect_lines(&mut lines, numbered("before", 0..50)).await;
    // copytruncate: copy the file away, then cut it to zero in place.
    std::fs::copy(&path, dir.path().join("app.log.1")).unwrap();
    truncate(&path, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    append(&path, &joined(&numbered("after", 0..5)));
    expect_lines(&mut lines, numbered("after", 0..5)).await;
}

#[tokio::test]
async fn rename_rotation_finishes_the_old_file_then_reads_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut old = std::fs::File::create(&path).unwrap();
    old.write_all(joined(&numbered("old", 0..10)).as_bytes())
        .unwrap();
    let mut lines = follow(&path, SeekFrom::Start(0));
    expect_lines(&mut lines, numbered("old", 0..10)).await;
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    // The program still writes to its old handle before it reopens.
    old.write_all(joined(&numbered("old", 10..13)).as_bytes())
        .unwrap();
    append(&path, &joined(&numbered("new", 0..10)));
    expect_lines(&mut lines, numbered("old", 10..13)).await;
    expect_lines(&mut lines, numbered("new", 0..10)).await;
}

#[tokio::test]
async fn a_deleted_file_is_waited_for_and_read_when_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "first\n");
    let mut lines = follow(&path, SeekFrom::Start(0));
    assert_eq!(next_line(&mut lines).await, "first");
    std::fs::remove_file(&path).unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await;
    assert!(waiting.is_err(), "no line while the file is gone");
    append(&path, "second\nthird\n");
    expect_lines(&mut lines, ["second", "third"].map(String::from)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_races_never_crash_the_tailer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("racy.log");
    append(&path, &"x".repeat(1 << 20));
    let mut tail = Tail::follow(&path, SeekFrom::Start(0)).unwrap();
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            let block = vec![b'x'; 256 << 10];
            for round in 0..1000 {
                let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.set_len(0).unwrap();
                file.write_all(&block[..(round * 4099) % block.len() + 1])
                    .unwrap();
            }
            append(&path, "\nthe end\n");
        })
    };
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 << 10];
        let mut seen = Vec::new();
        loop {
            let n = tail.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
            if seen.ends_with(b"\nthe end\n") {
                return;
            }
            let keep = seen.len().saturating_sub(16);
            seen.drain(..keep);
        }
    });
    writer.join().unwrap();
    tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the tailer kept going to the end")
        .unwrap();
}

#[tokio::test]
async fn an_appended_line_reaches_a_waiting_reader_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "");
    let mut lines = follow(&path, SeekFrom::End(0));
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let waiter = tokio::spawn(async move {
            let line = next_line(&mut lines).await;
            (lines, line, Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = Instant::now();
        append(&path, &format!("ping {i}\n"));
        let (back, line, received) = waiter.await.unwrap();
        lines = back;
        assert_eq!(line, format!("ping {i}"));
        slowest = slowest.max(received - sent);
    }
    // inotify makes this well under a millisecond; the bound is generous
    // for a loaded machine (the precise figure comes from the tail_bench harness in benches/).
    assert!(
        slowest < Duration::from_millis(500),
        "slowest line took {slowest:?}"
    );
}

#[tokio::test]
async fn bad_paths_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = Tail::follow(dir.path().join("missing.log"), SeekFrom::End(0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = Tail::follow(dir.path(), SeekFrom::End(0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let path = dir.path().join("short.log");
    append(&path, "abc");
    for start in [SeekFrom::End(-4), SeekFrom::End(1), SeekFrom::Start(4)] {
        let err = Tail::follow(&path, start).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{start:?}");
    }
}

#[test]
fn follow_outside_a_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "x\n");
    let err = Tail::follow(&path, SeekFrom::End(0)).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

#[test]
fn tail_is_send_and_unpin() {
    fn check<T: Send + Unpin>() {}
    check::<Tail>();
    check::<BufReader<Tail>>();
}

#[tokio::test]
async fn a_tail_that_waits_for_a_missing_file_reads_it_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.log");
    let tail = Tail::options()
        .wait_for_file(true)
        .follow(&path, SeekFrom::End(0))
        .unwrap();
    assert_eq!(tail.position(), 0);
    let mut lines = tail.lines();
    let waiting = tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await;
    assert!(
        waiting.is_err(),
        "no line (and no error) while there is no file"
    );
    append(&path, "first\nsecond\n");
    expect_lines(&mut lines, ["first", "second"].map(String::from)).await;
}

#[tokio::test]
async fn waiting_for_a_file_that_is_there_starts_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "old\n");
    let tail = Tail::options()
        .wait_for_file(true)
        .follow(&path, SeekFrom::End(0))
        .unwrap();
    let mut lines = tail.lines();
    append(&path, "new\n");
    assert_eq!(next_line(&mut lines).await, "new");
}

#[tokio::test]
async fn lossy_lines_replace_bytes_that_are_not_utf8_and_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    std::fs::write(&path, b"good\n\xff\xfe bad\r\nafter\n").unwrap();
    let mut strict = follow(&path, SeekFrom::Start(0));
    assert_eq!(next_line(&mut strict).await, "good");
    let err = strict.next_line().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);

    let mut tail = Tail::follow(&path, SeekFrom::Start(0)).unwrap();
    for want in ["good", "\u{fffd}\u{fffd} bad", "after"] {
        assert_eq!(tail.next_line_lossy().await.unwrap(), want);
    }
}

#[tokio::test]
async fn a_lossy_line_cut_short_by_a_cancelled_call_comes_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "");
    let mut tail = Tail::follow(&path, SeekFrom::Start(0)).unwrap();
    append(&path, "half a ");
    let cut = tokio::time::timeout(Duration::from_millis(200), tail.next_line_lossy()).await;
    assert!(cut.is_err(), "no line before its end is written");
    append(&path, "line\n");
    let line = tokio::time::timeout(Duration::from_secs(10), tail.next_line_lossy())
        .await
        .expect("the line within 10 s")
        .unwrap();
    assert_eq!(line, "half a line");
}

/// The children's side, for tests that need a process of their own.
#[test]
fn child_entry() {
    let Some((role, _)) = child_role() else {
        return;
    };
    match role.as_str() {
        "tail-cycles" => follow_read_and_drop_many_tails(),
        other => panic!("unknown child role {other}"),
    }
}

/// How many inotify instances this process has open.
fn inotify_instances() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.as_os_str() == "anon_inode:inotify")
        .count()
}

fn follow_read_and_drop_many_tails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "a line\n");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cycle = || {
        runtime.block_on(async {
            let mut lines = follow(&path, SeekFrom::Start(0));
            assert_eq!(next_line(&mut lines).await, "a line");
        })
    };
    cycle();
    let after_one = inotify_instances();
    for _ in 0..200 {
        cycle();
    }
    assert_eq!(
        inotify_instances(),
        after_one,
        "each tail takes over the instance the one before it left"
    );
}

#[test]
fn dropped_tails_leave_their_inotify_instance_to_the_next_tail() {
    run_child("child_entry", "tail-cycles", "");
}
