//! Memory-mapped files and shared memory as first-class citizens of async
//! Rust on tokio.
//!
//! A [`MappedFile`] is a *mapping object*: a file on disk (persisted), named
//! shared memory that other processes open by name, or anonymous memory
//! (non-persisted). You never touch the object's memory directly; you make
//! *views* of any part of it, at any offset:
//!
//! ```text
//!              MappedFile (Arc<Object>: fd, access, capacity, shm lease)
//!          ┌─────────────────────────────────────────────────────────┐
//!  object  │0                                              capacity  │
//!          └─────────────────────────────────────────────────────────┘
//!              ├── View 100..5000 ──┤
//!                         ├──── ViewMut 3000..9000 ────┤
//!                                   (each view: its own mmap, page-aligned
//!                                    underneath, exact on top; all coherent)
//! ```
//!
//! - [`View`] / [`ViewMut`]: synchronous random access; they deref to
//!   `&[u8]` / `&mut [u8]`, with typed reads and writes at an offset, durable
//!   flushes and protection changes.
//! - [`ViewStream`] ([`MappedFile::stream`]): sequential async access,
//!   `AsyncRead` / `AsyncBufRead` / `AsyncSeek` / `AsyncWrite` and zero-copy
//!   [`Chunks`] of `Bytes`; background work on the [`Pager`]'s threads makes
//!   the pages ahead resident and writes dirty ones back, so polls never wait
//!   on the disk.
//!
//! Every view holds the object alive through an `Arc`, so dropping the
//! `MappedFile` while views exist is fine. Built on the same machinery:
//!
//! - [`Tail`]: follows a growing, rotated log file like `tail -F`.
//! - [`pipe`]: a one-way async byte pipe between processes through named
//!   shared memory.
//!
//! # When to use it, and when not
//!
//! Use it to read or write large files from async code without stalling the
//! executor or paying `tokio::fs`'s copies and thread hops, to hand file
//! contents to a network stack as zero-copy `Bytes`, to share memory or
//! stream bytes between processes on one machine, and to follow logs.
//!
//! Look elsewhere for small files (`tokio::fs::read` is simpler and as
//! fast), for files that other machines truncate on a network file system,
//! or for a platform other than Linux.
//!
//! # Quick start
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! use mapview::MappedFile;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("numbers.bin");
//! // SAFETY: this program is the only user of the new file.
//! let map = unsafe { MappedFile::create(&path, 1 << 20)? };
//! let mut head = map.view_mut(..4096)?;
//! head.write_value(0, &42u64)?;
//! head.flush()?; // durable on disk when it returns
//!
//! let again = map.view(..8)?;
//! assert_eq!(again.read_value::<u64>(0)?, 42);
//! # Ok(())
//! # }
//! ```
//!
//! # How a stream never stalls its executor
//!
//! A read of a mapped page that is not in memory sleeps the thread on the
//! disk (a major fault); on a tokio worker that stalls every task of that
//! thread. A [`ViewStream`] touches only bytes that its background work has
//! made resident:
//!
//! ```text
//!   poll_read / poll_fill_buf / Chunks::poll_next / poll_write
//!        │ bytes ready at the cursor?
//!        ├── yes: copy (guarded) / lend a slice / hand out a Bytes
//!        └── no : park the waker, return Pending (counted in stats().stalls)
//!                      ▲
//!   background:  mmap of the stream's next window (once per window),
//!                MADV_POPULATE_READ / _WRITE of the next read-ahead ── wake ──┘
//!                sync_file_range of dirty ranges behind the cursor
//! ```
//!
//! - **Mapped on the pager, in windows.** `mmap` and `munmap` take the
//!   process's memory-map lock for writing, so they wait behind every
//!   populate in flight, which holds it while it waits on the disk. So
//!   making a stream maps nothing: its background job maps the stream's
//!   range a window at a time (64 MiB, or four times its largest read-ahead
//!   window), the next window before the reader gets there, and the first
//!   poll of a stream returns `Pending` until its first window is mapped
//!   (or fails with the error of that `mmap`). A window the cursor left is
//!   unmapped once no zero-copy `Bytes` of it is alive, large ones on the
//!   pager. So a stream maps about two windows at a time, however large its
//!   range (larger than the address space even), and a read or write that
//!   would cross the end of a window returns the bytes up to it.
//! - **Read-ahead.** The window starts at 2 MiB and doubles each time the
//!   reader catches up, up to 32 MiB ([`StreamOptions`]). The background job
//!   populates it 1 MiB at a time and reports each step, so a reader that
//!   caught up waits for one step, not a window. Pages already in memory
//!   (per `mincore`, where the kernel tells the truth) are read at once.
//! - **One budget for all streams.** The bytes all streams keep resident
//!   ahead of their readers stay under the [`Pager`]'s read-ahead budget (a
//!   sixteenth of memory, at most 1 GiB, by default): each window is at
//!   most an equal share of it, so windows shrink as streams open and grow
//!   back as they close, and prefetched pages are not evicted before their
//!   readers come. Should memory pressure evict them anyway, the reader
//!   finds out (one `mincore` as it enters each 1 MiB step, where the
//!   kernel tells the truth) and has them prefetched again off the worker,
//!   counted in `stats().evictions`.
//! - **Memory bounded by the window.** Pages a stream has read leave its
//!   mapping 8 MiB at a time behind the cursor (`MADV_DONTNEED`: the page
//!   cache keeps them), so its resident memory and page tables do not grow
//!   with the file, and the windows the cursor left are unmapped altogether;
//!   [`StreamOptions::drop_behind`] drops them from the page
//!   cache too, for data read once. Memory behind a live zero-copy `Bytes`
//!   is never released.
//! - **Writes.** Dirty bytes stay under a bound (64 MiB by default,
//!   [`StreamOptions::dirty_limit`]); a writer held at the bound gets
//!   `Pending` and resumes a step at a time. Write-back unmaps each batch
//!   behind the cursor before its I/O, because writing back a page that is
//!   still mapped writable makes the kernel write-protect it with a TLB
//!   flush that interrupts the worker's CPU. `poll_flush` is
//!   `msync(MS_SYNC)` of what was written since the last flush, off the
//!   worker.
//! - **Fairness.** A stream that is always ready (hot pages) still yields
//!   to the other tasks of its thread after about 0.5 ms of back-to-back
//!   polls, as tokio's own cooperative budget does for its resources. The
//!   same holds for [`Tail`] and the pipe ends.
//! - **Background threads.** The jobs of every stream run on one
//!   [`Pager`]: a bounded set of the library's own threads (eight per core
//!   by default, at most 32), shared round-robin, a waiting stream's job
//!   first. They run in 1 MiB steps with a yield between them, under
//!   `SCHED_BATCH`, so a job woken by its stream does not preempt the
//!   worker on its CPU. Code that
//!   is on the blocking pool anyway can call
//!   [`ViewStream::prefetch_blocking`] to fault in the first bytes there.
//! - **Truncation.** A file truncated under a stream yields
//!   `UnexpectedEof`, never a `SIGBUS` crash: copies run under a
//!   process-wide `SIGBUS` handler that swaps a zero page in for the lost
//!   page and fails the copy. A write into a sparse file whose file system
//!   is full yields `StorageFull`.
//!
//! # Named shared memory that does not outlive crashes
//!
//! POSIX shared memory stays in `/dev/shm` until someone unlinks it, even
//! after every process died. mapview counts the holders of a named map
//! ([`MappedFile::create_shared`], [`MappedFile::open_shared`], [`pipe`])
//! with `flock`, which the kernel releases when a process dies:
//!
//! ```text
//!   holder A ──LOCK_SH──┐
//!   holder B ──LOCK_SH──┼──> /dev/shm/NAME
//!   holder C ──LOCK_SH──┘
//!
//!   on drop: LOCK_UN, then LOCK_EX|LOCK_NB
//!            won  -> nobody else holds it: unlink NAME (if NAME is still us)
//!            lost -> someone else still holds it: just close
//! ```
//!
//! A creator makes the object with `O_EXCL` under an exclusive lock, sizes
//! it, then downgrades to a shared lock; anyone who finds a name that no
//! process holds (all holders died) may reap it. Names are short ASCII
//! identifiers, and the objects are made with mode 0600: other users of the
//! machine cannot open them.
//!
//! # Blocking, runtimes and threads
//!
//! | call | blocks the calling thread? | needs a tokio runtime? |
//! | --- | --- | --- |
//! | [`MappedFile`] constructors | briefly: `open`, `fstat`, `mmap`; `create` allocates the capacity it grows (`fallocate`) | no |
//! | [`MappedFile::view`], [`view_mut`](MappedFile::view_mut) | briefly (`mmap`) | no |
//! | reading or writing a [`View`] / [`ViewMut`] | on a page fault, until the disk delivers the page | no |
//! | [`ViewMut::flush`], [`flush_range`](ViewMut::flush_range) | until the bytes are durable | no |
//! | [`MappedFile::stream`] | no: it maps nothing (the [`Pager`] maps the stream's windows) | yes |
//! | [`ViewStream`] polls, [`Chunks`] | no: the waiting (on the disk, and on `mmap`) happens on the [`Pager`] | yes |
//! | [`ViewStream::prefetch_blocking`] | until the bytes are mapped and in memory | yes |
//! | [`Tail::follow`], [`pipe::create`], [`pipe::open`] | briefly (`open`, `mmap`) | yes, with IO enabled |
//!
//! So in async code, use streams, or move random access to cold pages and
//! flushes into `spawn_blocking`. Every public type is `Send` and `Sync`
//! and implements `Debug`; `ViewStream`, `Chunks`, `Tail` and the pipe ends
//! are also `Unpin`.
//!
//! # Errors
//!
//! Every fallible call returns [`std::io::Result`]. The kinds a caller can
//! act on:
//!
//! | kind | when |
//! | --- | --- |
//! | `InvalidInput` | a range past the capacity, a bad shared-memory name, a path that is not a regular file |
//! | `NotFound` | a missing file, a name that no process holds |
//! | `AlreadyExists` | [`MappedFile::create_shared`] or [`pipe::create`] on a taken name |
//! | `PermissionDenied` | writing through a read-only map or stream; a named map or pipe owned by another user or open to others |
//! | `UnexpectedEof` | the file or shared memory was truncated under a stream, a tail or a pipe |
//! | `StorageFull` | the file system has no room for the pages a stream writes |
//! | `WriteZero` | `write_all` at the end of a stream's range (a write there returns `Ok(0)`) |
//! | `BrokenPipe` | the other end of a pipe is gone |
//! | `InvalidData` | a pipe whose header a peer corrupted; a live named map of size 0 |
//! | `TimedOut` | [`pipe::open_wait`] found no pipe in time |
//!
//! # Safety
//!
//! As in memmap2, a mapping shows the bytes of the file (or shared memory)
//! *as they are now*: another process, or other code in this one, can change
//! them behind a live `&[u8]` or truncate the file, after which touching the
//! missing pages raises `SIGBUS`. The constructors that map something others
//! can change, [`MappedFile::open`], [`MappedFile::create`],
//! [`MappedFile::from_file`], [`MapOptions::open`], [`MapOptions::open_file`],
//! [`MappedFile::create_shared`] and [`MappedFile::open_shared`], are
//! therefore `unsafe fn`: the caller vouches
//! that nothing changes the bytes behind live views in a way the program
//! cannot tolerate. [`MappedFile::anonymous`] is safe, and so is everything
//! after construction.
//!
//! What the library covers against truncation, and what it does not:
//!
//! - Covered: everything a [`ViewStream`] does and lends out. Its reads and
//!   writes copy through a guard, and the memory it lends (`fill_buf`
//!   slices, the `Bytes` of [`Chunks`], for as long as they live) is
//!   covered by the library's `SIGBUS` handler: lost pages read as zeros
//!   and the stream's next poll fails with `UnexpectedEof` (see [`ViewStream`]
//!   for the details).
//! - Not covered: the `&[u8]` / `&mut [u8]` of [`View`] and [`ViewMut`].
//!   Touching a page of them that a truncation took away raises `SIGBUS`
//!   and kills the process; keeping the file long enough is the caller's
//!   part of the contract.
//! - The bytes themselves: a file changed (not truncated) by someone else
//!   changes what lent `Bytes` hold, as it changes views.
//!
//! The cover works through a process-wide `SIGBUS` handler that the library
//! installs on first use. A handler installed after it must pass the faults
//! it does not handle on to the handler it replaced (call the previous
//! `sigaction`'s handler), or the cover is gone.
//!
//! A full disk also raises `SIGBUS`: a write through a [`ViewMut`] into a
//! hole of a sparse file whose file system has no room for the page.
//! [`MappedFile::create`] allocates the capacity it grows, so its files have
//! no holes; opening a file made sparse elsewhere read-write is part of what
//! the caller vouches for. A [`ViewStream`] reports `StorageFull` there.
//!
//! # Platform
//!
//! Linux is the tested platform. Platform calls live in one private `sys`
//! module so that other Unix systems and Windows can follow.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod budget;
mod driver;
#[cfg(feature = "http")]
pub mod http;
mod map;
mod object;
mod paging;
pub mod pipe;
mod range;
mod region;
mod shm;
mod stream;
mod sys;
mod tail;
mod view;

pub use bytemuck::Pod;
pub use map::{MapOptions, MappedFile};
pub use object::Access;
#[doc(hidden)]
pub use paging::Paused;
pub use paging::{Pager, PagerBuilder};
#[doc(hidden)]
pub use stream::BackgroundWatch;
pub use stream::{Chunks, StreamOptions, StreamStats, ViewStream};
pub use tail::{Tail, TailOptions};
pub use view::{View, ViewMut};

/// The README's examples, compiled as doctests so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
