//! How fast and how much the paging engine works: every pacing constant of
//! the background work (step sizes, yields, lingering, priority, budgets)
//! and of the foreground polls, each with the reason for its value.
//!
//! ```text
//!   pager threads   PER_CORE x cores, at most MAX_DEFAULT, under POLICY;
//!                   idle for KEEP_ALIVE, then gone; LOOKAHEAD hints in flight
//!   a job           BLOCKING_STEP at a time, sched_yield between steps; its
//!                   CPU-bound part (touching fresh pages) by CPU_PER_CORE
//!                   threads per core at once
//!   teardown        TEARDOWN_STEP at a time; small regions (< UNMAP_OFF_WORKER)
//!                   unmapped inline when the pager is idle
//!   read-ahead      a 1/MEMORY_SHARE of memory, at most MAX_READ_AHEAD, shared;
//!                   a waiting reader gets its share clamped to MIN_FLOOR..=FLOOR
//!   release         behind the cursor in steps of a RELEASE_STEPS_PER_SHARE-th of
//!                   the share, RELEASE_MIN_STEP..=TEARDOWN_STEP, on the reclaim thread
//!   map windows     a stream maps MAP_WINDOW_READ_AHEADS x its largest read-ahead
//!                   window at a time, at least MAP_WINDOW_MIN, on the pager
//!   polls           a stream yields after SLICE of back-to-back polls (GAP apart)
//! ```

use std::time::Duration;

/// The default bound on threads: eight per core, so that some threads can
/// wait on the disk while others populate, and at most [`MAX_DEFAULT`].
/// Beside busy processes, the scheduler shares the CPU per thread: with two
/// busy-looping processes on two cores, 1024 streams over a cold file read
/// at 0.31-0.36x `tokio::fs` (and its 512 threads) with 8 pager threads,
/// 0.55x with 16 and 0.85x with 28; on a quiet machine 8 and 16 threads
/// read alike (`scale --quick [--hog] --streams 256,1024`).
pub(crate) const PER_CORE: usize = 8;

/// How many pager threads per core may do CPU-bound work (touch the pages
/// of a step fresh off the disk) at once; the others sleep until one is
/// done (see `cpu_gate`). One per core: the run queue of a core then holds
/// at most one such thread beside an async worker. With 1024 streams over a
/// cold 8 GiB file, in five interleaved runs against no gate, the polls of
/// 10 ms or more went from 0-15 a run to 0-4, at the same throughput; and
/// beside two busy-looping processes it read at 920 MB/s against 859
/// (`scale --quick --size-mib 8192 --streams 1024 [--hog]`).
pub(crate) const CPU_PER_CORE: usize = 1;

/// The most threads the default pager starts, whatever the core count.
pub(crate) const MAX_DEFAULT: usize = 32;

/// How long an idle pager thread waits for work before it ends. Long enough
/// that a busy process keeps its threads between bursts, short enough that
/// an idle one gives them back.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// How many queued tasks' hints a thread starts when it takes a task: the
/// reads kept in flight for the streams that wait their turn. A hint
/// (`MADV_WILLNEED`) costs no thread, and a queued job's bytes are already
/// within the read-ahead budget, so this is about all of them: with 16,
/// 1024 streams over a cold file read at 0.52-0.63x `tokio::fs` (whose 512
/// blocking threads keep 512 reads in flight), with 1024 at 0.66-0.77x
/// (`scale --quick --streams 256,1024`, interleaved runs).
pub(crate) const LOOKAHEAD: usize = 1024;

/// The scheduling policy of the pager's threads. Under `SCHED_BATCH` the
/// scheduler does not let a thread preempt the one on its CPU when it
/// wakes up: on a busy machine a job woken by its stream (or by the disk)
/// otherwise took the CPU of the async worker that woke it, for hundreds of
/// microseconds at a time (`cargo run --release -p mapview-benches --bin
/// write_latency` shows it as tick lateness). `SCHED_IDLE` would go further
/// and starve the jobs behind any busy thread, readers included; so does a
/// high nice value. Over a file of 1.33x memory with 1024 streams, nice 19
/// cut the polls of 10 ms or more to 7-24 a run (against 11-152 at nice 0),
/// but beside two busy-looping processes the streams read at 7 MB/s (nice
/// 10: 48-50) against 273-373 at nice 0. Backing off to nice 0 when a
/// thread waited far longer than it ran while other processes kept most of
/// the CPUs busy lost a sixth beside the loops, and fired without them too
/// (the kernel's reclaim keeps a CPU busy), for no fewer slow polls.
pub(crate) const POLICY: libc::c_int = libc::SCHED_BATCH;

/// Background work on a region's pages goes this many bytes at a time, with
/// a `sched_yield` in between. Filling or tearing down page tables and
/// starting writeback are CPU work in the kernel, milliseconds for tens of
/// MiB, and the scheduler can queue an async worker woken meanwhile behind
/// such a call on the same CPU for that long (`perf sched` showed 3.8 ms
/// while the other CPU was idle); in steps, a step's worth at most.
pub(crate) const BLOCKING_STEP: u64 = 1 << 20;

/// Dropping page tables is cheaper per byte than filling them, and each
/// step flushes TLBs: in 1 MiB steps it cost `chunks()` of a hot 1 GiB file
/// ~12% of its throughput (`cargo bench -p mapview-benches --bench read`),
/// in 8 MiB steps nothing measurable. So the teardown of a region, and the
/// release of pages behind a reading stream, take larger steps.
pub(crate) const TEARDOWN_STEP: u64 = 8 * BLOCKING_STEP;

/// Regions smaller than this are unmapped on the dropping thread when the
/// pager is idle (see `Region`'s mapping's `drop`): a trip to the pager per
/// region cost a server of hot 64 KiB ranges a third of its requests.
pub(crate) const UNMAP_OFF_WORKER: usize = 16 << 20;

/// The default read-ahead budget: a sixteenth of the machine's memory, and
/// at most [`MAX_READ_AHEAD`]. Enough for a window of a few MiB for each
/// of hundreds of streams, little enough that prefetched pages are not
/// evicted before their readers come.
pub(crate) const MEMORY_SHARE: u64 = 16;

/// The most the default read-ahead budget takes.
pub(crate) const MAX_READ_AHEAD: u64 = 1 << 30;

/// The most a waiting reader is granted beyond a spent budget: one step of
/// the background job.
pub(crate) const FLOOR: u64 = BLOCKING_STEP;

/// The least a waiting reader is granted: a few pages, so that it moves on
/// however many streams share the budget.
pub(crate) const MIN_FLOOR: u64 = 64 << 10;

/// The smallest step released behind a reading stream at once: each
/// release is a system call and a TLB flush.
pub(crate) const RELEASE_MIN_STEP: u64 = 256 << 10;

/// A reading stream releases the pages behind its cursor in steps of this
/// fraction of its share of the read-ahead budget: so the consumed pages
/// still mapped add at most a quarter of the budget to what is resident
/// ahead. In steps of a whole share, 1024 streams over a file of 1.33x
/// memory peaked at 1.9 GiB of RSS with a 1 GiB budget (`scale --streams
/// 1024`).
pub(crate) const RELEASE_STEPS_PER_SHARE: u64 = 4;

/// A stream maps its range a window at a time, this many times its largest
/// read-ahead window: the next window is mapped (on the pager) while the
/// reader still has most of this one ahead of it, so a reader never waits
/// for an `mmap`, and a stream maps a few times per window at most.
pub(crate) const MAP_WINDOW_READ_AHEADS: u64 = 4;

/// The smallest window a stream maps at once (unless its range is smaller):
/// each `mmap` and `munmap` takes the process's memory-map lock for
/// writing, which waits behind every populate in flight, so a stream
/// should map seldom; and a window this large costs only address space
/// (47 bits hold two million of them) and one `vm.max_map_count` entry.
pub(crate) const MAP_WINDOW_MIN: u64 = 64 << 20;

/// How long a stream may be polled back to back before it yields.
pub(crate) const SLICE: Duration = Duration::from_micros(500);

/// A pause between the starts of two polls longer than this means the task
/// waited on something else in between: the slice starts over. Shorter
/// pauses count as running: the copy of a large read and whatever the task
/// does with the bytes before its next poll keep the thread just as busy.
/// (At 100 µs, reads of 1 MiB on a loaded machine each looked like a new
/// start, and the stream never yielded.)
pub(crate) const GAP: Duration = Duration::from_millis(1);
