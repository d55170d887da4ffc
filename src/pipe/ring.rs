//! The ring: a header, a data area and an end marker in one named
//! shared-memory object, shared by exactly one writer and one reader process.
//!
//! ```text
//!  offset  field            type       written by     read by
//!  0       magic            AtomicU64  creator (last) opener
//!  8       version          AtomicU32  creator        opener
//!  16      capacity         AtomicU64  creator        opener
//!  24      token            AtomicU64  creator        opener (names the wake-up socket)
//!  64      head             AtomicU64  writer         reader   (own cache line)
//!  128     tail             AtomicU64  reader         writer   (own cache line)
//!  192     state            AtomicU32  both           both     (flag bits)
//!  196     reader_waiting   AtomicU32  reader sets,   writer clears
//!  200     writer_waiting   AtomicU32  writer sets,   reader clears
//!  256     data             capacity bytes
//!  end     end marker       AtomicU64  creator        both     (first word of the
//!                                                              page after the data)
//! ```
//!
//! `head` and `tail` count bytes since the pipe was made and never wrap (2^64
//! bytes); byte `n` of the stream lives at `data[n % capacity]`, so any
//! capacity works, not only powers of two. `head - tail` is the number of
//! readable bytes. Each side keeps its own counter in local memory and only
//! publishes it; the peer's counter is re-validated on every load (it must
//! stay within a capacity of ours and never go backwards), and every slice
//! is computed from `% capacity`, so a corrupt or hostile header gives
//! `InvalidData`, never an access outside the data area.
//!
//! Orderings: data is published with a `SeqCst` store of `head` (release
//! semantics for the bytes, sequentially consistent for the sleep check
//! below) and seen with an `Acquire` load; likewise `tail` hands space back.
//! Before sleeping, a side sets its `*_waiting` flag and re-reads the peer's
//! counter, both `SeqCst`; the peer stores its counter and then reads the
//! flag, both `SeqCst`. In the single total order of `SeqCst` operations one
//! of the two must see the other's store, so a wake-up is never lost
//! (Dekker's pattern).
//!
//! # Truncation
//!
//! Any process of the user may cut the object short. Two things guard
//! against that, neither with a system call on the hot path:
//!
//! - Every access to the mapping, header words included, runs under the
//!   `SIGBUS` guard ([`sys::guarded`]): touching a page that the truncation
//!   took is an `UnexpectedEof` error, and the page turns into private zeros.
//! - A truncation that keeps the touched pages (say, to 100 bytes: the first
//!   page stays, zeroed past byte 100) faults nowhere, so the end marker
//!   tells: it sits alone on the page after the data, and the kernel unmaps
//!   the pages past a new end *before* it zeroes the rest of the last page.
//!   So a reader that copies bytes out and then finds the marker intact knows
//!   that no truncation zeroed them, and one that finds it gone (a fault, or
//!   zeros after the object was grown back) reports `UnexpectedEof`. The
//!   reader checks the marker after each copy out, the writer after each copy
//!   in, and both when they wake up and when a counter moves in a way the
//!   protocol does not allow.
//!
//! Whatever went wrong is remembered: the ring is *damaged*, and every later
//! operation but dropping returns the same error.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};

use crate::sys::{self, guarded_copy, Cover, Guarded};
use crate::MappedFile;

const MAGIC: u64 = u64::from_le_bytes(*b"MAPVPIPE");
const END_MARK: u64 = u64::from_le_bytes(*b"MAPVPEND");
const VERSION: u32 = 2;

const MAGIC_AT: usize = 0;
const VERSION_AT: usize = 8;
const CAPACITY_AT: usize = 16;
const TOKEN_AT: usize = 24;
const HEAD_AT: usize = 64;
const TAIL_AT: usize = 128;
const STATE_AT: usize = 192;
const READER_WAITING_AT: usize = 196;
const WRITER_WAITING_AT: usize = 200;

/// Bytes in front of the data area.
const HEADER_LEN: usize = 256;

/// The largest data area accepted (1 TiB): far beyond any sensible pipe, and
/// small enough that no offset arithmetic can overflow.
pub(super) const MAX_CAPACITY: u64 = 1 << 40;

/// `state` bit: the writer shut down or was dropped; no more bytes come.
pub(super) const WRITER_CLOSED: u32 = 1;
/// `state` bit: a reader has opened the pipe (there is only ever one).
pub(super) const READER_ATTACHED: u32 = 2;
/// `state` bit: the reader was dropped; writes fail with `BrokenPipe`.
pub(super) const READER_CLOSED: u32 = 4;

/// Which side waits for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Reader,
    Writer,
}

/// Where the end marker of a ring of `capacity` bytes lies: at the start of
/// the page after the data area.
fn end_at(capacity: u64) -> u64 {
    (HEADER_LEN as u64 + capacity).next_multiple_of(sys::page_size() as u64)
}

/// The size of the object of a ring of `capacity` bytes.
fn object_len(capacity: u64) -> u64 {
    end_at(capacity) + size_of::<u64>() as u64
}

/// The payload of the error of [`Ring::open`] on an object whose creator
/// has not yet written the header: [`not_initialised`] tells it.
#[derive(Debug)]
struct NotInitialised(String);

impl std::fmt::Display for NotInitialised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotInitialised {}

/// Whether `error` (from [`Ring::open`]) says that the object has no header
/// yet: its creator is still setting it up (or it is not a pipe at all).
pub(super) fn not_initialised(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<NotInitialised>())
}

/// One end's mapping of the pipe object: the whole header and data area.
#[derive(Debug)]
pub(super) struct Ring {
    /// Header, data and end marker. A raw mapping: every process writes it,
    /// so Rust code never borrows it as a slice (but for `lend`).
    map: ManuallyDrop<MmapRaw>,
    /// Holds the named object alive (and registered as held by this
    /// process) for as long as the end lives. Dropped by hand, after `map`,
    /// so that `Drop` can let go of it before reaping after a crashed peer.
    object: ManuallyDrop<MappedFile>,
    /// Data bytes, validated against the object's size.
    capacity: u64,
    /// Offset of the end marker.
    end_at: usize,
    /// Random number that names the wake-up socket.
    token: u64,
    /// The uid that owns the shared memory; both ends must run as it.
    owner: u32,
    /// The shared memory's name.
    name: String,
    /// The peer's last published counter (`head` for the reader, `tail`
    /// for the writer): counters never go backwards.
    peer_seen: u64,
    /// The peer's process died: make sure the name goes when we drop.
    reap_on_drop: bool,
    /// The first truncation or corruption seen; every later call fails so.
    damage: OnceLock<(io::ErrorKind, String)>,
    /// Covers the mapping against `SIGBUS` while `fill_buf` lends it out;
    /// taken at the first loan (`None`: the handler's table is full).
    cover: OnceLock<Option<Cover>>,
}

/// The object's `fstat`: its owner and current size.
fn metadata(object: &MappedFile) -> io::Result<std::fs::Metadata> {
    std::fs::File::from(object.as_fd().try_clone_to_owned()?).metadata()
}

fn invalid_data(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

impl Ring {
    /// Creates the named object and initialises its header.
    pub(super) fn create(name: &str, capacity: usize) -> io::Result<Self> {
        let capacity = u64::try_from(capacity).unwrap_or(u64::MAX);
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a pipe's capacity must be 1 byte to {MAX_CAPACITY} bytes, not {capacity}"),
            ));
        }
        // SAFETY: the object is new (O_EXCL). This crate touches it only
        // through the raw mapping below, under the SIGBUS guard, so other
        // processes that write or truncate it cause errors, not undefined
        // behaviour; the only plain slice handed out
        // (`PipeReader::fill_buf`) covers bytes the protocol forbids the
        // writer to touch until the reader releases them.
        let object = unsafe { MappedFile::create_shared(name, object_len(capacity))? };
        let token = random_token();
        let ring = Self::new(object, capacity, token)?;
        ring.u32_at(VERSION_AT, |w| w.store(VERSION, Ordering::Relaxed))?;
        ring.u64_at(CAPACITY_AT, |w| w.store(capacity, Ordering::Relaxed))?;
        ring.u64_at(TOKEN_AT, |w| w.store(token, Ordering::Relaxed))?;
        ring.u64_at(ring.end_at, |w| w.store(END_MARK, Ordering::Relaxed))?;
        // Published last: an opener that sees the magic sees the rest.
        ring.u64_at(MAGIC_AT, |w| w.store(MAGIC, Ordering::Release))?;
        Ok(ring)
    }

    /// Opens the named object and validates its header.
    ///
    /// `InvalidData` for a wrong magic, version, capacity or size, or
    /// counters out of range; one that [`not_initialised`] tells for a
    /// header that is still all zeros.
    pub(super) fn open(name: &str) -> io::Result<Self> {
        // SAFETY: as in `create`: a peer that breaks the ring protocol can
        // only cause `InvalidData` or `UnexpectedEof` errors here (see the
        // module docs).
        let object = unsafe { MappedFile::open_shared(name)? };
        let size = object.capacity();
        if size < object_len(1) {
            return Err(invalid_data(format!(
                "shared memory {name:?} is {size} bytes, too small for a pipe"
            )));
        }
        let mut ring = Self::new(object, 0, 0)?;
        let magic = ring.u64_at(MAGIC_AT, |w| w.load(Ordering::Acquire))?;
        if magic == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                NotInitialised(format!("pipe {name:?} is not initialised (yet)")),
            ));
        }
        if magic != MAGIC {
            return Err(invalid_data(format!(
                "shared memory {name:?} is not a mapview pipe (bad magic {magic:#018x})"
            )));
        }
        let version = ring.u32_at(VERSION_AT, |w| w.load(Ordering::Relaxed))?;
        if version != VERSION {
            return Err(invalid_data(format!(
                "pipe {name:?} has layout version {version}, this library speaks {VERSION}"
            )));
        }
        let capacity = ring.u64_at(CAPACITY_AT, |w| w.load(Ordering::Relaxed))?;
        if capacity == 0 || capacity > MAX_CAPACITY || object_len(capacity) != size {
            return Err(invalid_data(format!(
                "pipe {name:?} claims a capacity of {capacity} bytes, but its shared memory \
                 is {size} bytes"
            )));
        }
        ring.capacity = capacity;
        // `end_at(capacity) < size`, which is mapped, so it fits in usize.
        ring.end_at = end_at(capacity) as usize;
        ring.check_end()?;
        ring.token = ring.u64_at(TOKEN_AT, |w| w.load(Ordering::Relaxed))?;
        let tail = ring.tail()?;
        ring.peer_seen = ring.u64_at(HEAD_AT, |w| w.load(Ordering::Acquire))?;
        ring.readable(tail)?;
        Ok(ring)
    }

    fn new(object: MappedFile, capacity: u64, token: u64) -> io::Result<Self> {
        let len = usize::try_from(object.capacity())
            .map_err(|_| invalid_data("pipe shared memory larger than the address space"))?;
        let map = MmapOptions::new().len(len).map_raw(&object.as_fd())?;
        let owner = metadata(&object)?.uid();
        let name = object.name().unwrap_or_default().to_owned();
        Ok(Self {
            map: ManuallyDrop::new(map),
            object: ManuallyDrop::new(object),
            capacity,
            end_at: end_at(capacity) as usize,
            token,
            owner,
            name,
            peer_seen: 0,
            reap_on_drop: false,
            damage: OnceLock::new(),
            cover: OnceLock::new(),
        })
    }

    /// The first error that damaged the ring, if any: every operation of the
    /// ends (but dropping) starts here.
    pub(super) fn check(&self) -> io::Result<()> {
        if let Some((kind, message)) = self.damage.get() {
            return Err(io::Error::new(*kind, message.clone()));
        }
        let lost_under_loan = self
            .cover
            .get()
            .and_then(Option::as_ref)
            .is_some_and(Cover::is_poisoned);
        if lost_under_loan {
            return Err(self.damaged(self.truncated()));
        }
        Ok(())
    }

    /// Records `error` as the ring's damage (unless an earlier one is) and
    /// returns the recorded one.
    fn damaged(&self, error: io::Error) -> io::Error {
        let (kind, message) = self
            .damage
            .get_or_init(|| (error.kind(), error.to_string()));
        io::Error::new(*kind, message.clone())
    }

    /// Runs `access` on `len` bytes at offset `at` of the mapping (which
    /// must lie inside it) with a `SIGBUS` there absorbed: a truncated
    /// object damages the ring.
    fn guarded<T>(
        &self,
        at: usize,
        len: usize,
        access: impl FnOnce(*mut u8) -> T,
    ) -> io::Result<T> {
        assert!(
            at <= self.map.len() && len <= self.map.len() - at,
            "ring access out of bounds"
        );
        // SAFETY: `at` is inside the mapping (asserted above).
        let ptr = unsafe { self.map.as_mut_ptr().add(at) };
        // SAFETY: `ptr..ptr + len` lies inside the mapping, which `self`
        // owns and keeps alive through the call.
        let result = unsafe { sys::guarded(ptr as usize, len, || access(ptr)) };
        result.map_err(|_| self.damaged(self.truncated()))
    }

    /// Runs `access` on the header word at `at` (8-aligned).
    fn u64_at<T>(&self, at: usize, access: impl FnOnce(&AtomicU64) -> T) -> io::Result<T> {
        debug_assert!(at % align_of::<AtomicU64>() == 0);
        self.guarded(at, size_of::<u64>(), |ptr| {
            // SAFETY: the mapping starts page-aligned and `at` is 8-aligned
            // and in bounds (checked by `guarded`), so the pointer is valid
            // and aligned for an AtomicU64; the reference lives only inside
            // the guarded access. Every process touches these words only
            // through atomics, so there are no non-atomic data races.
            access(unsafe { AtomicU64::from_ptr(ptr.cast()) })
        })
    }

    /// Runs `access` on the header word at `at` (4-aligned).
    fn u32_at<T>(&self, at: usize, access: impl FnOnce(&AtomicU32) -> T) -> io::Result<T> {
        debug_assert!(at % align_of::<AtomicU32>() == 0);
        self.guarded(at, size_of::<u32>(), |ptr| {
            // SAFETY: as in `u64_at`, for a 4-aligned word.
            access(unsafe { AtomicU32::from_ptr(ptr.cast()) })
        })
    }

    /// The error for a truncated object, with its size now.
    fn truncated(&self) -> io::Error {
        let size = metadata(&self.object).map_or_else(|_| "?".to_owned(), |m| m.len().to_string());
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the shared memory of pipe {:?} was truncated by another process \
                 (size now {size} bytes, expected {})",
                self.name,
                object_len(self.capacity)
            ),
        )
    }

    /// `Ok` if the object still has all its bytes: the end marker is there.
    /// Call after copying bytes out (or in): if it is, no truncation zeroed
    /// them (see the module docs).
    pub(super) fn check_end(&self) -> io::Result<()> {
        // The copies before must be done before the marker is read.
        fence(Ordering::Acquire);
        let mark = self.u64_at(self.end_at, |w| w.load(Ordering::Relaxed))?;
        match mark {
            END_MARK => Ok(()),
            // Cut and grown back: the marker's page came back as zeros.
            0 => Err(self.damaged(self.truncated())),
            _ => Err(self.damaged(invalid_data(format!(
                "the end marker of pipe {:?} was overwritten ({mark:#018x})",
                self.name
            )))),
        }
    }

    /// A counter that moved as the protocol forbids: the object was cut
    /// short (counters read as zeros) or the peer scribbled on it.
    fn bad_counters(&self, head: u64, tail: u64) -> io::Error {
        if let Err(truncated) = self.check_end() {
            return truncated;
        }
        self.damaged(invalid_data(format!(
            "corrupt pipe header: head {head}, tail {tail}, capacity {}",
            self.capacity
        )))
    }

    /// The data area's size in bytes.
    pub(super) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The random number that names the wake-up socket.
    pub(super) fn token(&self) -> u64 {
        self.token
    }

    /// The uid that owns the shared memory.
    pub(super) fn owner(&self) -> u32 {
        self.owner
    }

    /// Bytes readable from `tail` (the reader's own counter) on: validates
    /// the writer's `head`.
    pub(super) fn readable(&mut self, tail: u64) -> io::Result<u64> {
        let head = self.u64_at(HEAD_AT, |w| w.load(Ordering::Acquire))?;
        match head.checked_sub(tail) {
            Some(n) if n <= self.capacity && head >= self.peer_seen => {
                self.peer_seen = head;
                Ok(n)
            }
            _ => Err(self.bad_counters(head, tail)),
        }
    }

    /// Bytes writable at `head` (the writer's own counter): validates the
    /// reader's `tail`.
    pub(super) fn writable(&mut self, head: u64) -> io::Result<u64> {
        let tail = self.u64_at(TAIL_AT, |w| w.load(Ordering::Acquire))?;
        match head.checked_sub(tail) {
            Some(n) if n <= self.capacity && tail >= self.peer_seen => {
                self.peer_seen = tail;
                Ok(self.capacity - n)
            }
            _ => Err(self.bad_counters(head, tail)),
        }
    }

    /// The reader's published counter (where a new reader starts).
    pub(super) fn tail(&self) -> io::Result<u64> {
        self.u64_at(TAIL_AT, |w| w.load(Ordering::Acquire))
    }

    /// Publishes the writer's counter (after the bytes below it are written).
    pub(super) fn publish_head(&self, head: u64) -> io::Result<()> {
        self.u64_at(HEAD_AT, |w| w.store(head, Ordering::SeqCst))
    }

    /// Publishes the reader's counter (after the bytes below it are read).
    pub(super) fn publish_tail(&self, tail: u64) -> io::Result<()> {
        self.u64_at(TAIL_AT, |w| w.store(tail, Ordering::SeqCst))
    }

    /// The `state` flags.
    pub(super) fn state(&self) -> io::Result<u32> {
        self.u32_at(STATE_AT, |w| w.load(Ordering::SeqCst))
    }

    /// Sets `flags` in `state`; returns the flags before.
    pub(super) fn set_state(&self, flags: u32) -> io::Result<u32> {
        self.u32_at(STATE_AT, |w| w.fetch_or(flags, Ordering::SeqCst))
    }

    fn waiting_at(side: Side) -> usize {
        match side {
            Side::Reader => READER_WAITING_AT,
            Side::Writer => WRITER_WAITING_AT,
        }
    }

    /// Announces that `side` is about to sleep. The caller must re-check
    /// the ring afterwards and sleep only if nothing changed.
    pub(super) fn set_waiting(&self, side: Side) -> io::Result<()> {
        self.u32_at(Self::waiting_at(side), |w| w.store(1, Ordering::SeqCst))
    }

    /// Withdraws `side`'s announcement when the re-check found work after
    /// all (saves the peer a needless wake-up).
    pub(super) fn clear_waiting(&self, side: Side) -> io::Result<()> {
        self.u32_at(Self::waiting_at(side), |w| w.store(0, Ordering::Relaxed))
    }

    /// Whether `side` announced it sleeps; clears the announcement so that
    /// one wake-up is sent per sleep. Call after publishing a counter or
    /// state change.
    pub(super) fn take_waiting(&self, side: Side) -> io::Result<bool> {
        // The plain load keeps the common case (peer busy) free of a locked
        // instruction.
        self.u32_at(Self::waiting_at(side), |flag| {
            flag.load(Ordering::SeqCst) != 0 && flag.swap(0, Ordering::SeqCst) != 0
        })
    }

    /// The data area's `(offset, len)` pieces that hold stream bytes
    /// `pos..pos + len` (`len <= capacity`): one piece, or two on wrap.
    fn pieces(&self, pos: u64, len: usize) -> [(usize, usize); 2] {
        debug_assert!(len as u64 <= self.capacity);
        // Both fit in usize: offsets are below the capacity, which is mapped.
        let offset = (pos % self.capacity) as usize;
        let first = len.min(self.capacity as usize - offset);
        [(HEADER_LEN + offset, first), (HEADER_LEN, len - first)]
    }

    /// Copies `src` into the ring as stream bytes `pos..`, then checks that
    /// the object was not cut short under the copy.
    pub(super) fn write_at(&self, pos: u64, src: &[u8]) -> io::Result<()> {
        let mut done = 0;
        for (offset, len) in self.pieces(pos, src.len()) {
            if len == 0 {
                continue;
            }
            // SAFETY: `offset + len` lies inside the mapping (`pieces` keeps
            // every piece inside the data area, which the mapping covers);
            // `src[done..done + len]` is in bounds and cannot overlap the
            // shared mapping, which Rust code never borrows mutably. A
            // truncated object turns into an error in the guarded copy.
            let copied = unsafe {
                guarded_copy(
                    self.map.as_mut_ptr().add(offset),
                    src.as_ptr().add(done),
                    len,
                    Guarded::Destination,
                )
            };
            copied.map_err(|_| self.damaged(self.truncated()))?;
            done += len;
        }
        self.check_end()
    }

    /// Copies stream bytes `pos..pos + len` out of the ring to `dst`, then
    /// checks that the object was not cut short under the copy (which would
    /// have copied zeros).
    ///
    /// # Safety
    ///
    /// `dst` must be valid for writes of `len` bytes and not point into this
    /// ring; `len` must not exceed the capacity.
    pub(super) unsafe fn read_at(&self, pos: u64, dst: *mut u8, len: usize) -> io::Result<()> {
        let mut done = 0;
        for (offset, piece) in self.pieces(pos, len) {
            if piece == 0 {
                continue;
            }
            // SAFETY: the source piece lies in the data area (see `write_at`);
            // the caller vouches for `dst`.
            let copied = unsafe {
                guarded_copy(
                    dst.add(done),
                    self.map.as_ptr().add(offset),
                    piece,
                    Guarded::Source,
                )
            };
            copied.map_err(|_| self.damaged(self.truncated()))?;
            done += piece;
        }
        self.check_end()
    }

    /// The stream bytes from `pos` on that lie contiguously in the data area,
    /// at most `len` (`len <= capacity`) of them, lent out of the mapping
    /// after checking that the object was not cut short (any truncation
    /// takes the end marker). `None` if the mapping cannot be covered
    /// against `SIGBUS` (the handler's table is full): copy them instead.
    ///
    /// # Safety
    ///
    /// The bytes must be published by the writer (below its `head`) and not
    /// yet released by the reader (at or above its `tail`): the protocol then
    /// forbids the writer to change them while the slice lives.
    pub(super) unsafe fn lend(&self, pos: u64, len: usize) -> io::Result<Option<&[u8]>> {
        self.check()?;
        self.check_end()?;
        if self.cover().is_none() {
            return Ok(None);
        }
        let [(offset, len), _] = self.pieces(pos, len);
        // SAFETY: the piece lies inside the mapping (see `write_at`), which
        // lives as long as `&self`, and which the cover keeps readable: a
        // page a truncation takes reads as zeros (and the next `check`
        // fails). A writer that keeps to the protocol leaves the bytes alone
        // while the slice lives (the caller's promise); one that does not
        // can change them, which the pipe's docs state.
        Ok(Some(unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(offset), len)
        }))
    }

    /// The mapping's cover, taken on the first call.
    fn cover(&self) -> Option<&Cover> {
        let cover = self.cover.get_or_init(|| {
            // SAFETY: the whole mapping is ours, mapped in `new`; `drop`
            // drops the cover before it unmaps.
            unsafe { Cover::new(self.map.as_ptr(), self.map.len()) }
        });
        cover.as_ref()
    }
}

impl Ring {
    /// Makes sure the shared memory goes away when this end drops although
    /// the peer's process died: call when the peer crashed.
    pub(super) fn reap_on_drop(&mut self) {
        self.reap_on_drop = true;
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Uncovered while still mapped (the contract of `Cover::new`).
        drop(self.cover.take());
        // SAFETY: `map` and `object` are not used after these lines; `drop`
        // runs once. The mapping goes first: the object may unlink the name.
        unsafe {
            ManuallyDrop::drop(&mut self.map);
            ManuallyDrop::drop(&mut self.object);
        }
        if self.reap_on_drop {
            reap(self.name.clone());
        }
    }
}

/// Removes the name of a pipe whose peer crashed, once nobody holds it.
///
/// The last holder of a named map unlinks it when it drops (see `shm.rs`),
/// but the kernel may close a dying process's socket, which is how we learnt
/// of the death, a moment before it releases that process's hold on the
/// shared memory; our own drop would then leave the object behind. An open
/// of an object that nobody holds reaps it, so retry opens: a few times right
/// away (blocking at most about 2 ms, only after a crash), then from a
/// short-lived thread for up to a second, in case the memory is still held
/// (say, by a forked child of the dead peer, which then removes it itself).
fn reap(name: String) {
    let gone = |name: &str| {
        // SAFETY: the map is dropped at once; no byte is touched.
        match unsafe { MappedFile::open_shared(name) } {
            Ok(map) => {
                drop(map); // reaps it if we were the last holder
                false // the next open tells
            }
            Err(_) => true, // NotFound: reaped (leftovers are reaped by open)
        }
    };
    for _ in 0..10 {
        if gone(&name) {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let retry = move || {
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(10));
            if gone(&name) {
                return;
            }
        }
    };
    // No thread, no cleanup: the next creator of the name reaps it.
    let _ = std::thread::Builder::new()
        .name("mapview-pipe-reaper".into())
        .spawn(retry);
}

/// An unpredictable number: the name of a pipe's wake-up socket must not be
/// guessable by other users, who could otherwise take it first.
fn random_token() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's random source.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}
