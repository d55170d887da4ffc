//! `mapview::pipe`: ordering, end of stream, shutdown, crashes and wake-ups,
//! within one process and across two (each cross-process test re-runs this
//! test binary as a child that plays one end). Hostile peers: `pipe_hostile.rs`.

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::{child_role, shm_exists, shm_name, spawn_child, wait_for_line};
use mapview::pipe::{self, PipeReader, PipeWriter};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio_test::{assert_pending, assert_ready};

/// Byte `i` of every test stream: position-dependent, so a lost, doubled or
/// misplaced byte (say, at a wrap of the ring) shows.
fn stream_byte(i: u64) -> u8 {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8 ^ (i as u8)
}

/// A small deterministic generator for write and read sizes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Writes `total` stream bytes in random pieces of 1 byte to 4 x capacity,
/// then shuts down.
async fn write_stream(writer: &mut PipeWriter, total: u64, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng(seed | 1);
    let max = 4 * writer.capacity();
    let mut pos = 0u64;
    let mut buf = Vec::new();
    while pos < total {
        let len = (1 + rng.below(max)).min((total - pos) as usize);
        buf.clear();
        buf.extend((pos..pos + len as u64).map(stream_byte));
        writer.write_all(&buf).await?;
        pos += len as u64;
    }
    writer.shutdown().await
}

/// Reads to EOF with random read sizes, checking every byte; returns the
/// count.
async fn read_stream(reader: &mut PipeReader, seed: u64) -> u64 {
    let mut rng = Rng(seed | 1);
    let max = 4 * reader.capacity();
    let mut pos = 0u64;
    let mut buf = vec![0u8; max];
    loop {
        let want = 1 + rng.below(max);
        let n = reader.read(&mut buf[..want]).await.unwrap();
        if n == 0 {
            return pos;
        }
        for (k, &b) in buf[..n].iter().enumerate() {
            assert_eq!(b, stream_byte(pos + k as u64), "byte {}", pos + k as u64);
        }
        pos += n as u64;
    }
}

/// Reads to EOF through `fill_buf`/`consume`, checking every byte.
async fn read_stream_zero_copy(reader: &mut PipeReader, seed: u64) -> u64 {
    let mut rng = Rng(seed | 1);
    let mut pos = 0u64;
    loop {
        let bytes = reader.fill_buf().await.unwrap();
        if bytes.is_empty() {
            return pos;
        }
        let n = 1 + rng.below(bytes.len());
        for (k, &b) in bytes[..n].iter().enumerate() {
            assert_eq!(b, stream_byte(pos + k as u64), "byte {}", pos + k as u64);
        }
        reader.consume(n);
        pos += n as u64;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The children's side: `arg` is `name,capacity,total`.
#[test]
fn child_entry() {
    let Some((role, arg)) = child_role() else {
        return;
    };
    let args: Vec<&str> = arg.split(',').collect();
    let name = args[0];
    let number = |i: usize| args[i].parse::<u64>().unwrap();
    runtime().block_on(async {
        match role.as_str() {
            // Creates the pipe and writes `total` bytes in random pieces.
            "write-random" => {
                let mut writer = pipe::create(name, number(1) as usize).unwrap();
                println!("created");
                write_stream(&mut writer, number(2), number(2))
                    .await
                    .unwrap();
            }
            // Creates the pipe, writes `total` bytes and hangs with the
            // writer open, waiting to be killed.
            "write-and-hang" => {
                let mut writer = pipe::create(name, number(1) as usize).unwrap();
                let bytes: Vec<u8> = (0..number(2)).map(stream_byte).collect();
                writer.write_all(&bytes).await.unwrap();
                println!("written");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            // Creates the pipe, writes `total` bytes, shuts down and exits
            // once the shutdown completes.
            "write-shutdown-exit" => {
                let mut writer = pipe::create(name, number(1) as usize).unwrap();
                let bytes: Vec<u8> = (0..number(2)).map(stream_byte).collect();
                writer.write_all(&bytes).await.unwrap();
                println!("shutting down");
                writer.shutdown().await.unwrap();
                println!("shut down");
            }
            // Opens the pipe, reads one byte and hangs, waiting to be killed.
            "read-and-hang" => {
                let mut reader = pipe::open(name).unwrap();
                reader.read_u8().await.unwrap();
                println!("reading");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            other => panic!("unknown child role {other}"),
        }
    });
}

fn transfer_across_processes(capacity: usize, total: u64, zero_copy: bool) {
    let name = shm_name("order");
    let mut child = spawn_child(
        "child_entry",
        "write-random",
        &format!("{name},{capacity},{total}"),
    );
    wait_for_line(&mut child, "created");
    let received = runtime().block_on(async {
        let mut reader = pipe::open(&name).unwrap();
        if zero_copy {
            read_stream_zero_copy(&mut reader, 7).await
        } else {
            read_stream(&mut reader, 7).await
        }
    });
    assert_eq!(received, total);
    assert!(child.wait().unwrap().success());
    assert!(!shm_exists(&name));
}

#[test]
fn every_byte_arrives_in_order_across_processes_with_random_write_sizes() {
    transfer_across_processes(4096, 3 << 20, false);
}

#[test]
fn every_byte_arrives_in_order_with_a_capacity_that_is_not_a_power_of_two() {
    transfer_across_processes(10_007, 3 << 20, false);
}

#[test]
fn every_byte_arrives_in_order_through_fill_buf_across_processes() {
    transfer_across_processes(999, 1 << 20, true);
}

#[tokio::test]
async fn tiny_rings_still_carry_every_byte_in_order() {
    for capacity in [1, 2, 3, 17] {
        let name = shm_name("tiny");
        let mut writer = pipe::create(&name, capacity).unwrap();
        let mut reader = pipe::open(&name).unwrap();
        let producer = tokio::spawn(async move { write_stream(&mut writer, 20_000, 3).await });
        assert_eq!(read_stream(&mut reader, 5).await, 20_000);
        producer.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn reader_sees_eof_after_shutdown_while_the_writer_lives() {
    let name = shm_name("eof");
    let mut writer = pipe::create(&name, 100).unwrap();
    let mut reader = pipe::open(&name).unwrap();
    writer.write_all(b"last words").await.unwrap();
    let mut got = Vec::new();
    let (shut, read) = tokio::join!(writer.shutdown(), reader.read_to_end(&mut got));
    shut.unwrap();
    read.unwrap();
    assert_eq!(got, b"last words");
    assert_eq!(reader.read(&mut [0; 8]).await.unwrap(), 0, "EOF stays EOF");
    let err = writer.write_all(b"more").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe, "write after shutdown");
    drop((reader, writer));
    assert!(!shm_exists(&name));
}

#[tokio::test]
async fn reader_sees_eof_after_the_writer_is_dropped() {
    let name = shm_name("drop-eof");
    let mut writer = pipe::create(&name, 100).unwrap();
    let mut reader = pipe::open(&name).unwrap();
    let pending_read = tokio::spawn(async move {
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.map(|_| got)
    });
    writer.write_all(b"bye").await.unwrap();
    drop(writer);
    assert_eq!(pending_read.await.unwrap().unwrap(), b"bye");
    assert!(!shm_exists(&name));
}

/// Reads the pipe to EOF and checks that it carried exactly `total` stream
/// bytes.
async fn read_all_of(reader: &mut PipeReader, total: usize) {
    let mut got = Vec::new();
    reader.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), total);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, &b)| b == stream_byte(i as u64)));
}

#[test]
fn a_writer_that_shuts_down_before_its_reader_opens_loses_nothing_and_may_then_exit() {
    let name = shm_name("exit-first");
    let mut child = spawn_child(
        "child_entry",
        "write-shutdown-exit",
        &format!("{name},4096,3000"),
    );
    wait_for_line(&mut child, "shutting down");
    runtime().block_on(async {
        let mut reader = pipe::open(&name).unwrap();
        read_all_of(&mut reader, 3000).await;
    });
    wait_for_line(&mut child, "shut down");
    assert!(child.wait().unwrap().success());
    assert_gone_soon(&name);
}

#[test]
fn a_reader_that_starts_first_waits_for_its_writer_with_open_wait() {
    let name = shm_name("reader-first");
    runtime().block_on(async {
        let waiting = tokio::spawn({
            let name = name.clone();
            async move { pipe::open_wait(&name, Duration::from_secs(20)).await }
        });
        tokio::task::yield_now().await;
        let mut child = spawn_child(
            "child_entry",
            "write-shutdown-exit",
            &format!("{name},1000,100000"),
        );
        let mut reader = waiting.await.unwrap().unwrap();
        read_all_of(&mut reader, 100_000).await;
        wait_for_line(&mut child, "shut down");
        assert!(child.wait().unwrap().success());
    });
    assert_gone_soon(&name);
}

#[tokio::test]
async fn open_wait_gives_up_with_timed_out() {
    let name = shm_name("never");
    let err = pipe::open_wait(&name, Duration::from_millis(30))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
}

#[tokio::test]
async fn open_wait_reports_other_errors_at_once() {
    let err = pipe::open_wait("bad name", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[tokio::test]
async fn shutdown_with_a_reader_attached_completes_at_once_and_loses_nothing() {
    let name = shm_name("attached");
    let mut writer = pipe::create(&name, 100).unwrap();
    let mut reader = pipe::open(&name).unwrap();
    writer.write_all(b"0123456789").await.unwrap();
    // In the same task as the reader: it must not wait for the reader.
    writer.shutdown().await.unwrap();
    drop(writer); // as if its process exited
    let mut got = Vec::new();
    reader.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"0123456789");
}

#[tokio::test]
async fn shutdown_without_a_reader_waits_for_one_and_never_returns_ok_early() {
    let name = shm_name("no-reader");
    let mut writer = pipe::create(&name, 100).unwrap();
    writer.write_all(b"for whoever comes").await.unwrap();
    let mut shutdown = tokio_test::task::spawn(writer.shutdown());
    poll_until_asleep(&mut shutdown).await;
    let mut reader = pipe::open(&name).unwrap();
    let mut got = Vec::new();
    reader.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"for whoever comes");
    wait_until_woken(&shutdown).await;
    assert_ready!(shutdown.poll()).unwrap();
}

#[tokio::test]
async fn a_shutdown_nobody_reads_is_bounded_by_a_timeout_and_a_drop() {
    let name = shm_name("bounded-shutdown");
    let mut writer = pipe::create(&name, 100).unwrap();
    writer.write_all(b"unread").await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(10), writer.shutdown()).await;
    assert!(waited.is_err(), "shutdown returned before anyone read");
    drop(writer);
    assert!(!shm_exists(&name));
}

#[tokio::test]
async fn shutdown_of_an_empty_pipe_needs_no_reader() {
    let name = shm_name("empty-shutdown");
    let mut writer = pipe::create(&name, 100).unwrap();
    writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_is_broken_pipe_when_the_reader_leaves_bytes_unread() {
    let name = shm_name("unread");
    let mut writer = pipe::create(&name, 100).unwrap();
    let mut reader = pipe::open(&name).unwrap();
    writer.write_all(b"abcdef").await.unwrap();
    reader.read_exact(&mut [0u8; 2]).await.unwrap();
    drop(reader);
    let err = writer.shutdown().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
}

#[test]
fn reader_gets_an_error_not_a_hang_when_the_writers_process_is_killed() {
    let name = shm_name("killed-writer");
    let mut child = spawn_child(
        "child_entry",
        "write-and-hang",
        &format!("{name},4096,3000"),
    );
    wait_for_line(&mut child, "written");
    runtime().block_on(async {
        let mut reader = pipe::open(&name).unwrap();
        let mut first = vec![0u8; 1000];
        reader.read_exact(&mut first).await.unwrap();

        // Killed with bytes still in the ring: they all arrive, then the error.
        child.kill().unwrap();
        child.wait().unwrap();
        let mut rest = Vec::new();
        let started = Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut rest))
            .await
            .expect("the reader hung after its writer died")
            .unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
        assert_eq!(1000 + rest.len(), 3000);
        let all: Vec<u8> = first.into_iter().chain(rest).collect();
        assert!(all
            .iter()
            .enumerate()
            .all(|(i, &b)| b == stream_byte(i as u64)));
        println!("writer death reported {elapsed:?} after the reader started draining");
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    });
    assert!(!shm_exists(&name));
}

#[test]
fn a_reader_waiting_on_an_empty_ring_is_woken_by_the_writers_death() {
    let name = shm_name("killed-waiting");
    let mut child = spawn_child("child_entry", "write-and-hang", &format!("{name},4096,10"));
    wait_for_line(&mut child, "written");
    runtime().block_on(async {
        let mut reader = pipe::open(&name).unwrap();
        let mut got = [0u8; 10];
        reader.read_exact(&mut got).await.unwrap();
        let waiting = tokio::spawn(async move {
            let result = reader.read(&mut [0u8; 10]).await;
            (result, Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(50)).await; // let it sleep
        assert!(!waiting.is_finished());
        let killed = Instant::now();
        child.kill().unwrap();
        let (result, woke) = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the reader hung after its writer died")
            .unwrap();
        assert_eq!(result.unwrap_err().kind(), ErrorKind::BrokenPipe);
        let latency = woke - killed;
        println!("writer death reported {latency:?} after SIGKILL");
        assert!(latency < Duration::from_secs(1), "took {latency:?}");
        child.wait().unwrap();
    });
    assert_gone_soon(&name);
}

#[test]
fn writer_gets_broken_pipe_when_the_readers_process_is_killed() {
    let name = shm_name("killed-reader");
    runtime().block_on(async {
        let mut writer = pipe::create(&name, 4096).unwrap();
        let mut child = spawn_child("child_entry", "read-and-hang", &name);
        writer.write_all(b"x").await.unwrap();
        wait_for_line(&mut child, "reading");
        child.kill().unwrap();
        child.wait().unwrap();
        let chunk = vec![0u8; 1000];
        let err = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Err(e) = writer.write_all(&chunk).await {
                    return e;
                }
            }
        })
        .await
        .expect("the writer hung after its reader died");
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    });
    assert!(!shm_exists(&name));
}

#[tokio::test]
async fn writer_gets_broken_pipe_once_the_reader_is_dropped() {
    let name = shm_name("reader-dropped");
    let mut writer = pipe::create(&name, 64).unwrap();
    let reader = pipe::open(&name).unwrap();
    writer.write_all(b"fits").await.unwrap();
    drop(reader);
    let err = writer.write_all(b"no one listens").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
}

#[tokio::test]
async fn a_writer_blocked_on_a_full_ring_gets_broken_pipe_when_the_reader_drops() {
    let name = shm_name("full-then-dropped");
    let mut writer = pipe::create(&name, 8).unwrap();
    let reader = pipe::open(&name).unwrap();
    let mut task = tokio_test::task::spawn(writer.write_all(b"more than eight bytes"));
    poll_until_asleep(&mut task).await;
    drop(reader);
    wait_until_woken(&task).await;
    let err = assert_ready!(task.poll()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
}

#[tokio::test]
async fn no_shared_memory_is_left_once_both_ends_are_gone() {
    let name = shm_name("cleanup");
    let writer = pipe::create(&name, 1000).unwrap();
    let reader = pipe::open(&name).unwrap();
    assert!(shm_exists(&name));
    drop(writer);
    assert!(shm_exists(&name), "the reader still holds it");
    drop(reader);
    assert!(!shm_exists(&name));
    assert_eq!(pipe::open(&name).unwrap_err().kind(), ErrorKind::NotFound);
}

/// Asserts that the shared memory disappears within a second. After a
/// crash the survivor may learn of the death a moment before the kernel
/// releases the dead process's hold on the memory; it reaps it just after.
fn assert_gone_soon(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while shm_exists(name) {
        assert!(Instant::now() < deadline, "{name} was left behind");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test]
async fn a_second_reader_or_writer_is_refused() {
    let name = shm_name("exclusive");
    let _writer = pipe::create(&name, 4096).unwrap();
    let _reader = pipe::open(&name).unwrap();
    let err = pipe::open(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    let err = pipe::create(&name, 4096).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
}

#[tokio::test]
async fn bad_names_and_capacities_are_invalid_input() {
    for bad in ["", ".", "..", "a/b", "white space", "ü", &"x".repeat(201)] {
        assert_eq!(
            pipe::create(bad, 4096).unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "create {bad:?}"
        );
        assert_eq!(
            pipe::open(bad).unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "open {bad:?}"
        );
    }
    let name = shm_name("capacity");
    assert_eq!(
        pipe::create(&name, 0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(!shm_exists(&name));
}

#[test]
fn create_and_open_outside_a_runtime_are_errors_not_panics() {
    let name = shm_name("no-runtime");
    let err = pipe::create(&name, 4096).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
    let err = pipe::open(&name).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
    assert!(!shm_exists(&name));
}

#[test]
fn create_and_open_in_a_runtime_without_io_are_errors_not_panics() {
    let name = shm_name("no-io");
    let without_io = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = without_io
        .block_on(async { pipe::create(&name, 4096) })
        .unwrap_err();
    assert!(err.to_string().contains("IO enabled"), "{err}");
    assert!(!shm_exists(&name));

    let with_io = runtime();
    let writer = with_io
        .block_on(async { pipe::create(&name, 4096) })
        .unwrap();
    let err = without_io
        .block_on(async { pipe::open(&name) })
        .unwrap_err();
    assert!(err.to_string().contains("IO enabled"), "{err}");
    drop(writer);
    assert!(!shm_exists(&name));
}

/// Lets the runtime's reactor run until `task` was woken (bounded).
async fn wait_until_woken<T: std::future::Future>(task: &tokio_test::task::Spawn<T>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !task.is_woken() {
        assert!(Instant::now() < deadline, "the task was never woken");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Polls `task`, which must stay pending, until it stops waking itself (a
/// waiting pipe end looks again for some microseconds before it sleeps on
/// its link), then checks that it stays asleep: an idle end costs nothing.
async fn poll_until_asleep<T>(task: &mut tokio_test::task::Spawn<T>)
where
    T: std::future::Future,
    T::Output: std::fmt::Debug,
{
    for _ in 0..100 {
        assert_pending!(task.poll());
        // Lets the runtime run the wake-ups it defers to after its driver.
        tokio::time::sleep(Duration::from_millis(1)).await;
        if !task.is_woken() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!task.is_woken(), "an idle pipe end woke itself");
            return;
        }
    }
    panic!("the pipe end never went to sleep");
}

#[tokio::test]
async fn reader_is_pending_on_an_empty_ring_and_woken_by_a_write() {
    let name = shm_name("wake-reader");
    let mut writer = pipe::create(&name, 4096).unwrap();
    let mut reader = pipe::open(&name).unwrap();
    let mut buf = [0u8; 16];
    let mut read = tokio_test::task::spawn(reader.read(&mut buf));
    poll_until_asleep(&mut read).await;
    writer.write_all(b"wake").await.unwrap();
    wait_until_woken(&read).await;
    assert_eq!(assert_ready!(read.poll()).unwrap(), 4);
    drop(read);
    assert_eq!(&buf[..4], b"wake");
}

#[tokio::test]
async fn writer_is_pending_on_a_full_ring_and_woken_by_a_read() {
    let name = shm_name("wake-writer");
    let mut writer = pipe::create(&name, 10).unwrap();
    let mut reader = pipe::open(&name).unwrap();
    writer.write_all(b"0123456789").await.unwrap();
    let mut write = tokio_test::task::spawn(writer.write(b"abc"));
    poll_until_asleep(&mut write).await;
    let mut buf = [0u8; 4];
    reader.read_exact(&mut buf).await.unwrap();
    wait_until_woken(&write).await;
    assert_eq!(assert_ready!(write.poll()).unwrap(), 3);
}

#[tokio::test]
async fn reader_is_woken_by_shutdown() {
    let name = shm_name("wake-eof");
    let mut writer = pipe::create(&name, 4096).unwrap();
    let mut reader = pipe::open(&name).unwrap();
    let mut buf = [0u8; 16];
    let mut read = tokio_test::task::spawn(reader.read(&mut buf));
    poll_until_asleep(&mut read).await;
    writer.shutdown().await.unwrap();
    wait_until_woken(&read).await;
    assert_eq!(assert_ready!(read.poll()).unwrap(), 0);
}

#[tokio::test]
async fn fill_buf_hands_out_contiguous_ring_bytes_across_the_wrap() {
    let name = shm_name("fill-buf");
    let mut writer = pipe::create(&name, 10).unwrap();
    let mut reader = pipe::open(&name).unwrap();
    writer.write_all(b"01234567").await.unwrap();
    assert_eq!(reader.fill_buf().await.unwrap(), b"01234567");
    reader.consume(6);
    writer.write_all(b"abcdefgh").await.unwrap(); // wraps after "ab"
    assert_eq!(reader.fill_buf().await.unwrap(), b"67ab");
    reader.consume(100); // clamped to what was handed out
    assert_eq!(reader.fill_buf().await.unwrap(), b"cdefgh");
}

#[test]
fn ends_are_send_and_unpin() {
    fn assert_send_unpin<T: Send + Unpin>() {}
    assert_send_unpin::<PipeReader>();
    assert_send_unpin::<PipeWriter>();
}
