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
//!   [`Chunks`] of `Bytes`; a background task on tokio's blocking pool makes
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
//! # Safety
//!
//! As in memmap2, a mapping shows the bytes of the file (or shared memory)
//! *as they are now*: another process, or other code in this one, can change
//! them behind a live `&[u8]` or truncate the file, after which touching the
//! missing pages raises `SIGBUS`. The constructors that map something others
//! can change, [`MappedFile::open`], [`MappedFile::create`],
//! [`MapOptions::open`], [`MappedFile::create_shared`] and
//! [`MappedFile::open_shared`], are therefore `unsafe fn`: the caller vouches
//! that nothing changes the bytes behind live views in a way the program
//! cannot tolerate. [`MappedFile::anonymous`] is safe, and so is everything
//! after construction.
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
mod map;
mod object;
#[cfg(target_os = "linux")]
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
pub use stream::{BackgroundWatch, Chunks, StreamOptions, StreamStats, ViewStream};
pub use tail::{Tail, TailOptions};
pub use view::{View, ViewMut};
