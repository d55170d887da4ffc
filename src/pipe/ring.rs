//! The ring: a header and a data area in one named shared-memory object,
//! shared by exactly one writer and one reader process.
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
//! ```
//!
//! `head` and `tail` count bytes since the pipe was made and never wrap (2^64
//! bytes); byte `n` of the stream lives at `data[n % capacity]`, so any
//! capacity works, not only powers of two. `head - tail` is the number of
//! readable bytes. Each side keeps its own counter in local memory and only
//! publishes it; the peer's counter is re-validated on every load, and every
//! slice is computed from `% capacity`, so a corrupt or hostile header gives
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
//! All data bytes move with [`guarded_copy`], so a peer that truncates the
//! object causes an `UnexpectedEof` error instead of a `SIGBUS`.

use std::fs::File;
use std::io;
use std::mem::{align_of, size_of, ManuallyDrop};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::sys::{guarded_copy, Guarded};
use crate::{MappedFile, ViewMut};

const MAGIC: u64 = u64::from_le_bytes(*b"MAPVPIPE");
const VERSION: u32 = 1;

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

/// One end's mapping of the pipe object: the whole header and data area.
#[derive(Debug)]
pub(super) struct Ring {
    /// Header + data; holds the named object alive (and registered as held
    /// by this process) for as long as the end lives. Dropped by hand, so
    /// that `Drop` can let go of it before reaping after a crashed peer.
    view: ManuallyDrop<ViewMut>,
    /// Data bytes, validated against the object's size.
    capacity: u64,
    /// Random number that names the wake-up socket.
    token: u64,
    /// The uid that owns the shared memory; both ends must run as it.
    owner: u32,
    /// The shared memory's name.
    name: String,
    /// The peer's process died: make sure the name goes when we drop.
    reap_on_drop: bool,
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
        // SAFETY: the object is new (O_EXCL). Other processes that open it by
        // name only touch it through the ring protocol: the header through
        // atomics and the data through guarded copies; the only plain slice
        // handed out (`PipeReader::fill_buf`) covers bytes the protocol
        // forbids the writer to touch until the reader releases them.
        let map = unsafe { MappedFile::create_shared(name, HEADER_LEN as u64 + capacity)? };
        let token = random_token();
        let ring = Self::from_map(&map, capacity, token)?;
        ring.u32_at(VERSION_AT).store(VERSION, Ordering::Relaxed);
        ring.u64_at(CAPACITY_AT).store(capacity, Ordering::Relaxed);
        ring.u64_at(TOKEN_AT).store(token, Ordering::Relaxed);
        // Published last: an opener that sees the magic sees the rest.
        ring.u64_at(MAGIC_AT).store(MAGIC, Ordering::Release);
        Ok(ring)
    }

    /// Opens the named object and validates its header.
    ///
    /// `InvalidData` for a wrong magic, version or capacity, or counters out
    /// of range.
    pub(super) fn open(name: &str) -> io::Result<Self> {
        // SAFETY: as in `create`: the peer follows the ring protocol, and a
        // peer that does not can only cause `InvalidData` or `UnexpectedEof`
        // errors here (see the module docs).
        let map = unsafe { MappedFile::open_shared(name)? };
        let size = map.capacity();
        if size < HEADER_LEN as u64 {
            return Err(invalid_data(format!(
                "shared memory {name:?} is {size} bytes, too small for a pipe header"
            )));
        }
        let ring = Self::from_map(&map, 0, 0)?;
        let magic = ring.u64_at(MAGIC_AT).load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(invalid_data(format!(
                "shared memory {name:?} is not a mapview pipe (bad magic {magic:#018x})"
            )));
        }
        let version = ring.u32_at(VERSION_AT).load(Ordering::Relaxed);
        if version != VERSION {
            return Err(invalid_data(format!(
                "pipe {name:?} has layout version {version}, this library speaks {VERSION}"
            )));
        }
        let capacity = ring.u64_at(CAPACITY_AT).load(Ordering::Relaxed);
        if capacity == 0 || capacity > MAX_CAPACITY || HEADER_LEN as u64 + capacity != size {
            return Err(invalid_data(format!(
                "pipe {name:?} claims a capacity of {capacity} bytes, but its shared memory \
                 is {size} bytes"
            )));
        }
        let mut ring = ring;
        ring.capacity = capacity;
        ring.token = ring.u64_at(TOKEN_AT).load(Ordering::Relaxed);
        let tail = ring.u64_at(TAIL_AT).load(Ordering::Acquire);
        ring.readable(tail)?;
        Ok(ring)
    }

    fn from_map(map: &MappedFile, capacity: u64, token: u64) -> io::Result<Self> {
        let view = map.view_mut(..)?;
        if view.as_raw_ptr() as usize % align_of::<AtomicU64>() != 0 || view.len() < HEADER_LEN {
            // mmap returns page-aligned memory; this is a belt-and-braces check
            // that the atomics below are aligned and in bounds.
            return Err(io::Error::other("pipe header mapping is misaligned"));
        }
        let owner = File::from(map.as_fd().try_clone_to_owned()?)
            .metadata()?
            .uid();
        Ok(Self {
            view: ManuallyDrop::new(view),
            capacity,
            token,
            owner,
            name: map.name().unwrap_or_default().to_owned(),
            reap_on_drop: false,
        })
    }

    /// The header word at `at`, as an atomic.
    fn u64_at(&self, at: usize) -> &AtomicU64 {
        debug_assert!(at % align_of::<AtomicU64>() == 0 && at + size_of::<u64>() <= HEADER_LEN);
        // SAFETY: the mapping starts page-aligned and is at least HEADER_LEN
        // bytes long (checked in `from_map`), and `at` is an 8-aligned
        // offset inside the header, so the pointer is valid and aligned for
        // an AtomicU64. The mapping lives as long as `self`, which bounds the
        // reference's lifetime. Every process touches header words only
        // through atomics, so there are no non-atomic data races. (A peer
        // that truncates the object below the header would make this access
        // fault; see the pipe module docs.)
        unsafe { &*self.view.as_raw_ptr().add(at).cast::<AtomicU64>() }
    }

    /// The header word at `at`, as an atomic.
    fn u32_at(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at % align_of::<AtomicU32>() == 0 && at + size_of::<u32>() <= HEADER_LEN);
        // SAFETY: as in `u64_at`, for a 4-aligned offset inside the header.
        unsafe { &*self.view.as_raw_ptr().add(at).cast::<AtomicU32>() }
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
    pub(super) fn readable(&self, tail: u64) -> io::Result<u64> {
        let head = self.u64_at(HEAD_AT).load(Ordering::Acquire);
        match head.checked_sub(tail) {
            Some(n) if n <= self.capacity => Ok(n),
            _ => Err(invalid_data(format!(
                "corrupt pipe header: head {head}, tail {tail}, capacity {}",
                self.capacity
            ))),
        }
    }

    /// Bytes writable at `head` (the writer's own counter): validates the
    /// reader's `tail`.
    pub(super) fn writable(&self, head: u64) -> io::Result<u64> {
        let tail = self.u64_at(TAIL_AT).load(Ordering::Acquire);
        match head.checked_sub(tail) {
            Some(n) if n <= self.capacity => Ok(self.capacity - n),
            _ => Err(invalid_data(format!(
                "corrupt pipe header: head {head}, tail {tail}, capacity {}",
                self.capacity
            ))),
        }
    }

    /// The reader's published counter (where a new reader starts).
    pub(super) fn tail(&self) -> u64 {
        self.u64_at(TAIL_AT).load(Ordering::Acquire)
    }

    /// Publishes the writer's counter (after the bytes below it are written).
    pub(super) fn publish_head(&self, head: u64) {
        self.u64_at(HEAD_AT).store(head, Ordering::SeqCst);
    }

    /// Publishes the reader's counter (after the bytes below it are read).
    pub(super) fn publish_tail(&self, tail: u64) {
        self.u64_at(TAIL_AT).store(tail, Ordering::SeqCst);
    }

    /// The `state` flags.
    pub(super) fn state(&self) -> u32 {
        self.u32_at(STATE_AT).load(Ordering::SeqCst)
    }

    /// Sets `flags` in `state`; returns the flags before.
    pub(super) fn set_state(&self, flags: u32) -> u32 {
        self.u32_at(STATE_AT).fetch_or(flags, Ordering::SeqCst)
    }

    fn waiting_flag(&self, side: Side) -> &AtomicU32 {
        match side {
            Side::Reader => self.u32_at(READER_WAITING_AT),
            Side::Writer => self.u32_at(WRITER_WAITING_AT),
        }
    }

    /// Announces that `side` is about to sleep. The caller must re-check
    /// the ring afterwards and sleep only if nothing changed.
    pub(super) fn set_waiting(&self, side: Side) {
        self.waiting_flag(side).store(1, Ordering::SeqCst);
    }

    /// Withdraws `side`'s announcement when the re-check found work after
    /// all (saves the peer a needless wake-up).
    pub(super) fn clear_waiting(&self, side: Side) {
        self.waiting_flag(side).store(0, Ordering::Relaxed);
    }

    /// Whether `side` announced it sleeps; clears the announcement so that
    /// one wake-up is sent per sleep. Call after publishing a counter or
    /// state change.
    pub(super) fn take_waiting(&self, side: Side) -> bool {
        let flag = self.waiting_flag(side);
        // The plain load keeps the common case (peer busy) free of a locked
        // instruction.
        flag.load(Ordering::SeqCst) != 0 && flag.swap(0, Ordering::SeqCst) != 0
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

    /// Copies `src` into the ring as stream bytes `pos..`.
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
            unsafe {
                guarded_copy(
                    self.view.as_raw_ptr().add(offset),
                    src.as_ptr().add(done),
                    len,
                    Guarded::Destination,
                )?;
            }
            done += len;
        }
        Ok(())
    }

    /// Copies stream bytes `pos..pos + len` out of the ring to `dst`.
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
            unsafe {
                guarded_copy(
                    dst.add(done),
                    self.view.as_raw_ptr().add(offset),
                    piece,
                    Guarded::Source,
                )?;
            }
            done += piece;
        }
        Ok(())
    }

    /// The stream bytes from `pos` on that lie contiguously in the data area,
    /// at most `len` (`len <= capacity`) of them.
    ///
    /// # Safety
    ///
    /// The bytes must be published by the writer (below its `head`) and not
    /// yet released by the reader (at or above its `tail`): the protocol then
    /// forbids the writer to change them while the slice lives.
    pub(super) unsafe fn contiguous(&self, pos: u64, len: usize) -> &[u8] {
        let [(offset, len), _] = self.pieces(pos, len);
        // SAFETY: the piece lies inside the mapping, which lives as long as
        // `&self`; the caller guarantees nobody writes it meanwhile.
        unsafe { std::slice::from_raw_parts(self.view.as_raw_ptr().add(offset), len) }
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
        // SAFETY: `view` is not used after this line; `drop` runs once.
        unsafe { ManuallyDrop::drop(&mut self.view) };
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
