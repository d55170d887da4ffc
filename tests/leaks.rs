//! Leaks: thousands of create-use-drop cycles of every public type leave the
//! process's file descriptors, mappings of files and memory objects,
//! threads, shared-memory names and heap as they found them.
//!
//! What counts as a leak is what grows with the cycles, not one-time or
//! bounded state. So every type first runs a few warm-up cycles (the
//! `SIGBUS` handler, say, is installed once), the blocking threads they
//! started exit (after the runtime's keep-alive, shortened here), and only
//! then is the baseline taken. After each type's cycles the process must
//! settle back to it: the same descriptors, object mappings and
//! shared-memory names, and no more threads. The heap must not grow in both
//! halves of a type's cycles (see [`HEAP_SLACK`]).
//!
//! Only mappings of files and memory objects are counted (lines of
//! `/proc/self/maps` with an inode): those are the ones the library makes
//! (but for the zero pages of its `SIGBUS` guard, which only a truncation
//! brings, and none happens here).
//! Anonymous mappings are thread stacks and malloc's memory, which glibc
//! keeps in caches of its own after threads exit; the thread count and the
//! heap count cover what they hold.
//!
//! Each async cycle ends by letting tokio's IO driver turn, as it does all
//! the time in a running program: tokio frees the registration of a dropped
//! socket only then, so without it any type with a socket looks as if it
//! leaked a few hundred bytes per cycle.
//!
//! A single test runs all the cycles in turn: the tests of one binary run on
//! parallel threads, whose descriptors, mappings, threads and allocations
//! would count as leaks here or hide one.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::io::{SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use mapview::{pipe, MappedFile, Tail};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// Create-use-drop cycles of each type.
const CYCLES: usize = 10_000;

/// Cycles of each type before the baseline is taken.
const WARM_UP: usize = 3;

/// How long the process may take to settle after a type's cycles: idle
/// blocking threads exit after the keep-alive below, a pipe's reaper
/// thread after up to a second, and the pager's threads 10 s after each
/// one's last task.
const SETTLE: Duration = Duration::from_secs(20);

/// The blocking pool's keep-alive in this test (tokio's default is 10 s).
const KEEP_ALIVE: Duration = Duration::from_millis(10);

const PAGE: u64 = 4096;

/// The system allocator, counting the bytes allocated and not yet freed.
struct Counting;

static HEAP_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes to the system allocator with the caller's
// arguments; the counter only adds and subtracts the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What a leak would make grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    fds: usize,
    object_mappings: usize,
    threads: usize,
    shm_objects: usize,
    heap_bytes: usize,
}

/// The inode field of a line of `/proc/self/maps`: "0" for anonymous memory.
fn maps_inode(line: &str) -> &str {
    line.split_whitespace().nth(4).expect("an inode field")
}

fn usage() -> Usage {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let threads = status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("Threads: in /proc/self/status");
    let prefix = common::shm_prefix();
    let shm_objects = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with(&prefix)
        })
        .count();
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    Usage {
        fds,
        object_mappings: maps.lines().filter(|line| maps_inode(line) != "0").count(),
        threads,
        shm_objects,
        // Last: the reads above allocate, and have freed it all by now.
        heap_bytes: HEAP_BYTES.load(Ordering::Relaxed),
    }
}

/// How much the heap may grow over one half of a type's cycles without
/// counting as a leak, as long as it does not grow in the other half too.
/// A leak grows the heap in both halves: by 40 KB or more over 5,000 cycles
/// that leak 8 bytes each, or over 150 `Tail` cycles that leak 28 bytes or
/// more each. Growth that stops is not a leak: tokio's queues and buffers
/// keep the capacity a burst of work gave them, tens of KiB after bursts on
/// a loaded machine, which show in one half.
const HEAP_SLACK: usize = 4 << 10;

impl Usage {
    /// Whether nothing but the heap grew since `baseline` (threads may be
    /// fewer: an idle one of the baseline may have exited since).
    fn within(self, baseline: Usage) -> bool {
        let threads = baseline.threads.min(self.threads);
        let rest = |usage| Usage {
            threads,
            heap_bytes: 0,
            ..usage
        };
        rest(self) == rest(baseline)
    }
}

/// What the cycles work on.
struct Fixture {
    runtime: Runtime,
    _dir: tempfile::TempDir,
    /// A file of a few pages, with lines to tail.
    file: PathBuf,
    /// A map of `file`, read-write.
    map: MappedFile,
}

impl Fixture {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_keep_alive(KEEP_ALIVE)
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data");
        let mut lines = std::fs::File::create(&file).unwrap();
        for i in 0..1000 {
            writeln!(lines, "line {i}").unwrap();
        }
        // SAFETY (of the test): nothing truncates the file.
        let map = unsafe { MappedFile::create(&file, 4 * PAGE) }.unwrap();
        Self {
            runtime,
            _dir: dir,
            file,
            map,
        }
    }

    /// Runs `cycle` on the runtime, then lets the IO driver turn.
    fn run(&self, cycle: impl Future<Output = ()>) {
        self.runtime.block_on(async {
            cycle.await;
            tokio::task::yield_now().await;
        });
    }

    /// Waits until the idle threads beyond `threads` exited; returns the
    /// usage then.
    fn idle_usage(&self, threads: usize) -> Usage {
        self.settle(|now| now.threads <= threads)
    }

    /// Waits until the process is back within `baseline`; returns the usage
    /// it ended at.
    fn back_to(&self, baseline: Usage) -> Usage {
        self.settle(|now| now.within(baseline))
    }

    /// Waits up to [`SETTLE`] until `settled`, turning the IO driver
    /// meanwhile; returns the last usage.
    fn settle(&self, settled: impl Fn(Usage) -> bool) -> Usage {
        let deadline = Instant::now() + SETTLE;
        loop {
            let now = usage();
            if settled(now) || Instant::now() > deadline {
                return now;
            }
            self.run(async { tokio::time::sleep(Duration::from_millis(1)).await });
        }
    }
}

fn file_map(f: &Fixture) {
    let created = unsafe { MappedFile::create(&f.file, 4 * PAGE) }.unwrap();
    let opened = unsafe { MappedFile::open(&f.file) }.unwrap();
    drop((created, opened));
}

fn shared_map(_: &Fixture) {
    let name = common::shm_name("leak");
    let created = unsafe { MappedFile::create_shared(&name, PAGE) }.unwrap();
    let opened = unsafe { MappedFile::open_shared(&name) }.unwrap();
    drop((created, opened));
}

fn anonymous_map(_: &Fixture) {
    drop(MappedFile::anonymous(PAGE).unwrap());
}

fn view(f: &Fixture) {
    let view = f.map.view(100..PAGE + 100).unwrap();
    assert_eq!(view.len() as u64, PAGE);
}

fn view_mut(f: &Fixture) {
    f.map.view_mut(100..200).unwrap().fill(1);
}

fn stream(f: &Fixture) {
    f.run(async {
        drop(f.map.stream(..).unwrap());
    });
}

/// A stream that read (its prefetcher ran) and wrote.
fn stream_read_write(f: &Fixture) {
    f.run(async {
        let mut stream = f.map.stream(PAGE..).unwrap();
        let mut buf = [0u8; 100];
        stream.read_exact(&mut buf).await.unwrap();
        stream.write_all(&buf).await.unwrap();
        stream.seek(SeekFrom::Start(0)).await.unwrap();
        stream.read_exact(&mut buf).await.unwrap();
    });
}

fn chunks(f: &Fixture) {
    f.run(async {
        let chunks = f.map.stream(..).unwrap().chunks(PAGE as usize);
        let chunks: Vec<bytes::Bytes> = chunks.try_collect().await.unwrap();
        assert_eq!(chunks.len(), 4);
    });
}

fn tail(f: &Fixture) {
    f.run(async {
        let mut tail = Tail::follow(&f.file, SeekFrom::Start(0)).unwrap();
        let mut line = [0u8; 7];
        tail.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"line 0\n");
    });
}

/// A pipe that carried some bytes, both ends dropped. The ends run side by
/// side: `shutdown` may wait for the reader to drain the pipe.
fn pipe_ends(f: &Fixture) {
    f.run(async {
        let name = common::shm_name("leak-pipe");
        let mut writer = pipe::create(&name, PAGE as usize).unwrap();
        let mut reader = pipe::open(&name).unwrap();
        let write = async {
            writer.write_all(b"through the pipe").await?;
            writer.shutdown().await
        };
        let mut got = Vec::new();
        let (written, read) = tokio::join!(write, reader.read_to_end(&mut got));
        written.unwrap();
        read.unwrap();
        assert_eq!(got, b"through the pipe");
    });
}

/// A type's name, one create-use-drop cycle of it, and how many to run.
type Cycles = (&'static str, fn(&Fixture), usize);

#[test]
fn create_drop_cycles_of_every_type_leave_nothing_behind() {
    let fixture = Fixture::new();
    let types: [Cycles; 10] = [
        ("MappedFile of a file", file_map, CYCLES),
        ("MappedFile::create_shared/open_shared", shared_map, CYCLES),
        ("MappedFile::anonymous", anonymous_map, CYCLES),
        ("View", view, CYCLES),
        ("ViewMut", view_mut, CYCLES),
        ("ViewStream", stream, CYCLES),
        ("ViewStream that read and wrote", stream_read_write, CYCLES),
        ("Chunks", chunks, CYCLES),
        ("Tail", tail, CYCLES),
        ("PipeWriter/PipeReader", pipe_ends, CYCLES),
    ];
    let idle = usage();
    for (_, cycle, _) in &types {
        for _ in 0..WARM_UP {
            cycle(&fixture);
        }
    }
    let mut baseline = fixture.idle_usage(idle.threads);
    let mut leaks = Vec::new();
    for (name, cycle, cycles) in types {
        let mut after = baseline;
        let mut heap_grown = [0; 2];
        for grown in &mut heap_grown {
            let before = after.heap_bytes;
            for _ in 0..cycles / 2 {
                cycle(&fixture);
            }
            after = fixture.back_to(baseline);
            *grown = after.heap_bytes.saturating_sub(before);
        }
        let heap_leak = heap_grown.iter().all(|&grown| grown >= HEAP_SLACK);
        if !after.within(baseline) || heap_leak {
            leaks.push(format!(
                "{cycles} x {name}: {baseline:?} -> {after:?}, heap grown by {heap_grown:?}"
            ));
            baseline = after; // so that the next type is judged on its own
        }
    }
    assert!(leaks.is_empty(), "leaks:\n{}", leaks.join("\n"));
}
