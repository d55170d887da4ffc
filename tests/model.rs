//! A model-based property test of the public surface: random interleavings
//! of views, writable views (and conversions between the two), stream
//! reads, `fill_buf`, writes, seeks, prefetches, flushes, shutdowns and
//! `chunks`, through read-write, read-only and copy-on-write handles, with
//! the object truncated and grown again by "another program" (`set_len` on
//! its path), checked against an in-memory model of each object's bytes.
//! Every result must match the model, and every error must be one the model
//! expects.
//!
//! CI runs a few dozen cases. `PROPTEST_CASES` sets the count; the thorough
//! run is
//!
//! ```text
//! PROPTEST_CASES=10000 cargo test --release --test model
//! ```
//!
//! What the model may and may not touch: a `View` or `ViewMut` lends the
//! mapping itself, and touching a page the file no longer covers raises
//! `SIGBUS` (the `unsafe` constructor contract). So the model reads views
//! only over pages the file still covers, and writes through them only
//! below the file's end. Streams and chunks are used over truncated ranges
//! too: there, a stream may fail with `UnexpectedEof` (and keeps failing once
//! its mapping is poisoned), but it never returns wrong bytes, and a stream
//! that no truncation reached never fails.
//!
//! Copy-on-write views and streams keep their writes to themselves: those
//! never reach the file or the model. Once a copy-on-write view or stream
//! has written, its bytes are its own (it took private copies of whole
//! pages, a stream even ahead of its cursor), so from then on only its
//! lengths and errors are checked.
//!
//! Left out:
//! - cuts inside a page: the file is cut and grown only to whole pages (or
//!   its full capacity). The rest of a cut page stays mapped; a stream
//!   checks the file's length when it makes pages resident, so it sees a
//!   cut made before that (`tests/faults.rs`), but not one made after, and
//!   then reads zeros there with `Ok`, where the model expects
//!   `UnexpectedEof`;
//! - which written bytes a truncation lost: the model does not track it,
//!   so a stream that a truncation reached may flush with `Ok` or fail
//!   (`tests/faults.rs` pins down that a flush after lost writes fails).
//!
//! Memory that `chunks` and `fill_buf` lend over pages the file lost reads
//! as zeros (the crate's `SIGBUS` cover): it is read all over, and checked
//! against the model where the file covers it.

mod common;

use std::fs::File;
use std::io::{ErrorKind, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use futures::StreamExt;
use mapview::{Access, MappedFile, StreamOptions, View, ViewMut, ViewStream};
use proptest::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const PAGE: u64 = 4096;

/// Slots for views and streams kept alive across operations.
const SLOTS: usize = 3;

/// Handles to each object: read-write, a second one (read-only for a file),
/// copy-on-write.
const HANDLES: usize = 3;

/// Cases run by default; `PROPTEST_CASES` overrides it.
const DEFAULT_CASES: u32 = 64;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// What backs the second object of a case (the first is always a file).
#[derive(Debug, Clone, Copy)]
enum Kind {
    File,
    Shared,
    Anonymous,
}

/// A non-empty range inside an object's capacity, or (for `shape` 0 and 1)
/// a reversed one or one past the capacity, which every call refuses as
/// `InvalidInput`. (Empty ranges are left out: issue 14 item 10 turns them
/// from `InvalidInput` into empty views.)
#[derive(Debug, Clone, Copy)]
struct Pick {
    start: u64,
    len: u64,
    shape: u8,
}

impl Pick {
    fn resolve(self, cap: u64) -> Range<u64> {
        let start = self.start % cap;
        match self.shape % 16 {
            0 => start + 1..start,
            1 => start..cap + 1 + self.len % PAGE,
            _ => start..start + 1 + self.len % (cap - start),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Makes a view of a range through one of the object's handles, reads
    /// it, and maybe keeps it.
    View {
        obj: usize,
        handle: usize,
        pick: Pick,
        keep: bool,
    },
    /// Reads a kept view (or writable view) again.
    ReadKept {
        slot: usize,
        mutable: bool,
    },
    /// Makes a writable view of a range, writes all of it, maybe keeps it.
    ViewMut {
        obj: usize,
        handle: usize,
        pick: Pick,
        seed: u8,
        keep: bool,
    },
    /// Writes part of a kept writable view (or, for `shape` 0, past its end).
    WriteKept {
        slot: usize,
        at: u64,
        len: u64,
        shape: u8,
        seed: u8,
    },
    /// Flushes a kept writable view: all of it, a part, or (for `shape` 0
    /// and 1) a bad range.
    FlushKept {
        slot: usize,
        pick: Pick,
    },
    /// Turns a kept view into a writable one, or back.
    Convert {
        slot: usize,
        to_mut: bool,
    },
    /// Opens a stream over a range (replacing the slot's stream).
    Stream {
        slot: usize,
        obj: usize,
        handle: usize,
        pick: Pick,
    },
    Read {
        slot: usize,
        len: usize,
    },
    /// `fill_buf`, then `consume` of up to `len` bytes of what it lent.
    FillBuf {
        slot: usize,
        len: usize,
    },
    /// `prefetch_blocking` of `len` bytes.
    Prefetch {
        slot: usize,
        len: u64,
    },
    Write {
        slot: usize,
        len: usize,
        seed: u8,
    },
    Seek {
        slot: usize,
        to: Seek,
    },
    Flush {
        slot: usize,
    },
    /// Shuts a stream down: it flushes, then refuses writes.
    Shutdown {
        slot: usize,
    },
    /// Turns a stream into `chunks` and takes up to `count` of them.
    Chunks {
        slot: usize,
        size: usize,
        count: usize,
    },
    /// Cuts or grows the object to a whole number of pages (or its full
    /// capacity), as another program would.
    SetLen {
        obj: usize,
        choice: u64,
    },
    /// Reads the object through its file descriptor, not a mapping.
    CheckFile {
        obj: usize,
    },
}

#[derive(Debug, Clone, Copy)]
enum Seek {
    Start(u64),
    Current(i64),
    End(i64),
}

fn pick() -> impl Strategy<Value = Pick> {
    (any::<u64>(), any::<u64>(), any::<u8>()).prop_map(|(start, len, shape)| Pick {
        start,
        len,
        shape,
    })
}

fn seek() -> impl Strategy<Value = Seek> {
    let span = 3 * PAGE as i64;
    prop_oneof![
        (0..span as u64).prop_map(Seek::Start),
        (-span..span).prop_map(Seek::Current),
        (-span..PAGE as i64).prop_map(Seek::End),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let obj = 0..2usize;
    let handle = 0..HANDLES;
    let slot = 0..SLOTS;
    let size = 0..3 * PAGE as usize;
    prop_oneof![
        3 => (obj.clone(), handle.clone(), pick(), any::<bool>())
            .prop_map(|(obj, handle, pick, keep)| Op::View { obj, handle, pick, keep }),
        2 => (slot.clone(), any::<bool>()).prop_map(|(slot, mutable)| Op::ReadKept { slot, mutable }),
        3 => (obj.clone(), handle.clone(), pick(), any::<u8>(), any::<bool>()).prop_map(
            |(obj, handle, pick, seed, keep)| Op::ViewMut { obj, handle, pick, seed, keep }
        ),
        2 => (slot.clone(), any::<u64>(), any::<u64>(), any::<u8>(), any::<u8>()).prop_map(
            |(slot, at, len, shape, seed)| Op::WriteKept { slot, at, len, shape, seed }
        ),
        1 => (slot.clone(), pick()).prop_map(|(slot, pick)| Op::FlushKept { slot, pick }),
        1 => (slot.clone(), any::<bool>()).prop_map(|(slot, to_mut)| Op::Convert { slot, to_mut }),
        3 => (slot.clone(), obj.clone(), handle, pick())
            .prop_map(|(slot, obj, handle, pick)| Op::Stream { slot, obj, handle, pick }),
        6 => (slot.clone(), size.clone()).prop_map(|(slot, len)| Op::Read { slot, len }),
        2 => (slot.clone(), size.clone()).prop_map(|(slot, len)| Op::FillBuf { slot, len }),
        1 => (slot.clone(), 0..4 * PAGE).prop_map(|(slot, len)| Op::Prefetch { slot, len }),
        6 => (slot.clone(), size, any::<u8>()).prop_map(|(slot, len, seed)| Op::Write { slot, len, seed }),
        3 => (slot.clone(), seek()).prop_map(|(slot, to)| Op::Seek { slot, to }),
        2 => slot.clone().prop_map(|slot| Op::Flush { slot }),
        1 => slot.clone().prop_map(|slot| Op::Shutdown { slot }),
        1 => (slot, 0..2 * PAGE as usize, 1..8usize)
            .prop_map(|(slot, size, count)| Op::Chunks { slot, size, count }),
        2 => (obj.clone(), any::<u64>()).prop_map(|(obj, choice)| Op::SetLen { obj, choice }),
        1 => obj.prop_map(|obj| Op::CheckFile { obj }),
    ]
}

/// Bytes that differ from write to write and along each write.
fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(31)) | 1)
        .collect()
}

/// One mapping object and its model.
struct Object {
    /// Handles to the object: read-write; a second one (for a file,
    /// read-only); copy-on-write.
    handles: [MappedFile; HANDLES],
    /// How "another program" reaches the object: opened at its path (for
    /// anonymous memory, a duplicate of its descriptor).
    outside: File,
    /// The model: the object's bytes up to its capacity (zero past `len`).
    bytes: Vec<u8>,
    /// Whether each byte of `bytes` is known: a stream write that failed
    /// may have written part of its bytes.
    known: Vec<bool>,
    /// The current length of the file.
    len: u64,
}

impl Object {
    fn new(kind: Kind, path: &Path, capacity: u64) -> Self {
        // SAFETY (of the test, for every map here): the model touches views
        // only over pages that the object still covers.
        let (first, second, path) = match kind {
            Kind::File => {
                let rw = unsafe { MappedFile::create(path, capacity) }.unwrap();
                let ro = unsafe { MappedFile::open(path) }.unwrap();
                (rw, ro, path.to_owned())
            }
            Kind::Shared => {
                let name = common::shm_name("model");
                let created = unsafe { MappedFile::create_shared(&name, capacity) }.unwrap();
                let opened = unsafe { MappedFile::open_shared(&name) }.unwrap();
                (created, opened, Path::new("/dev/shm").join(&name))
            }
            Kind::Anonymous => {
                use std::os::fd::{AsFd, AsRawFd};
                let map = MappedFile::anonymous(capacity).unwrap();
                let path = format!("/proc/self/fd/{}", map.as_fd().as_raw_fd());
                (map.clone(), map, path.into())
            }
        };
        let outside = File::options().read(true).write(true).open(&path);
        let options = MappedFile::options().access(Access::CopyOnWrite);
        let cow = unsafe { options.open(&path) }.unwrap();
        Self {
            handles: [first, second, cow],
            outside: outside.unwrap(),
            bytes: vec![0; capacity as usize],
            known: vec![true; capacity as usize],
            len: capacity,
        }
    }

    fn capacity(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn access(&self, handle: usize) -> Access {
        self.handles[handle].access()
    }

    /// The end of the pages the file still covers: a mapping may touch
    /// bytes below it.
    fn mapped_end(&self) -> u64 {
        self.len.next_multiple_of(PAGE)
    }

    /// Whether a view may read `range`.
    fn readable(&self, range: &Range<u64>) -> bool {
        range.end <= self.mapped_end()
    }

    /// Whether a view may write `range` (bytes past the end of the file in
    /// its last page would be lost).
    fn in_file(&self, range: &Range<u64>) -> bool {
        range.end <= self.len
    }

    /// Checks `got`, read at `at`, against the model.
    fn check(&self, at: u64, got: &[u8], what: &str) -> Result<(), TestCaseError> {
        let at = at as usize;
        for (i, &byte) in got.iter().enumerate() {
            if self.known[at + i] && self.bytes[at + i] != byte {
                return Err(TestCaseError::fail(format!(
                    "{what}: byte {} is {byte}, the model says {}",
                    at + i,
                    self.bytes[at + i]
                )));
            }
        }
        Ok(())
    }

    fn write(&mut self, at: u64, data: &[u8]) {
        if data.is_empty() {
            return; // `at` may lie past the end then
        }
        let range = at as usize..at as usize + data.len();
        self.bytes[range.clone()].copy_from_slice(data);
        self.known[range].fill(true);
    }

    /// Marks `range` (clamped to the capacity) as unknown.
    fn forget(&mut self, range: Range<u64>) {
        let end = range.end.min(self.capacity()) as usize;
        let start = (range.start as usize).min(end);
        self.known[start..end].fill(false);
    }

    fn set_len(&mut self, len: u64) {
        self.outside.set_len(len).unwrap();
        if len < self.len {
            // Cut bytes come back as zeros when the file grows again.
            let cut = len as usize..self.len as usize;
            self.bytes[cut.clone()].fill(0);
            self.known[cut].fill(true);
        }
        self.len = len;
    }
}

/// A stream and what the model knows about it.
struct Stream {
    stream: ViewStream,
    obj: usize,
    access: Access,
    /// The stream's range in the object.
    range: Range<u64>,
    pos: u64,
    /// Whether a truncation reached the stream's range (now or earlier): it
    /// may fail with `UnexpectedEof` from then on.
    hit: bool,
    shut_down: bool,
    /// Whether it is copy-on-write and has written: its bytes are its own.
    diverged: bool,
}

impl Stream {
    fn len(&self) -> u64 {
        self.range.end - self.range.start
    }

    /// Where the cursor is in the object.
    fn at(&self) -> u64 {
        self.range.start + self.pos
    }

    /// Moves the model's cursor on by `n` bytes, as the stream's moved.
    fn advance(&mut self, n: usize) -> Result<(), TestCaseError> {
        self.pos += n as u64;
        prop_assert_eq!(self.stream.position(), self.pos);
        Ok(())
    }

    /// What the model needs to check bytes handed out at the cursor.
    fn cursor(&self) -> Cursor {
        Cursor {
            at: self.at(),
            left: self.len().saturating_sub(self.pos),
            diverged: self.diverged,
        }
    }
}

/// A stream's cursor, for checking what the stream hands out there.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// Where the cursor is in the object.
    at: u64,
    /// Bytes from the cursor to the end of the stream.
    left: u64,
    diverged: bool,
}

impl Cursor {
    /// Checks that `n` bytes taken or handed out at the cursor when `asked`
    /// for at most that many are as many as there may be, and that `got`
    /// (the bytes handed out, unless they were lent over pages the file
    /// lost) come from pages the stream could copy and match the model.
    fn check(
        self,
        object: &Object,
        n: usize,
        asked: usize,
        got: Option<&[u8]>,
    ) -> Result<(), TestCaseError> {
        let left = self.left;
        prop_assert!(
            n as u64 <= left.min(asked as u64),
            "{} bytes of {} with {} left",
            n,
            asked,
            left
        );
        prop_assert!(
            n > 0 || asked == 0 || left == 0,
            "0 bytes with {} left",
            left
        );
        let Some(got) = got.filter(|_| !self.diverged) else {
            return Ok(());
        };
        let range = self.at..self.at + n as u64;
        prop_assert!(
            n == 0 || object.readable(&range),
            "{:?} copied out past the cut at {}",
            range,
            object.len
        );
        object.check(self.at, got, "stream")
    }
}

/// A kept view and what the model knows about it.
struct Kept<V> {
    view: V,
    model: ViewModel,
}

/// What the model knows about a view.
#[derive(Debug, Clone)]
struct ViewModel {
    obj: usize,
    access: Access,
    range: Range<u64>,
    /// Whether it is copy-on-write and has written: its bytes are its own.
    diverged: bool,
}

/// The objects of a case, with what the case keeps alive of them.
struct World {
    objects: [Object; 2],
    views: [Option<Kept<View>>; SLOTS],
    views_mut: [Option<Kept<ViewMut>>; SLOTS],
    streams: [Option<Stream>; SLOTS],
    options: StreamOptions,
}

/// Asserts that `result` failed with `kind`.
fn expect_err<T>(
    result: std::io::Result<T>,
    kind: ErrorKind,
    what: &str,
) -> Result<(), TestCaseError> {
    match result {
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!(
            "{what}: {e:?}, expected {kind:?}"
        ))),
        Ok(_) => Err(TestCaseError::fail(format!(
            "{what}: Ok, expected {kind:?}"
        ))),
    }
}

/// The error a stream may return: `UnexpectedEof`, and only once a
/// truncation reached it.
fn stream_error(hit: bool, error: std::io::Error, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        hit && error.kind() == ErrorKind::UnexpectedEof,
        "{}: {:?}, from a stream that a truncation {} reached",
        what,
        error,
        if hit { "has" } else { "never" }
    );
    Ok(())
}

/// Writes `len` bytes at `at` (in the view) through a writable view, if the
/// file covers them, and reads them back; the model takes them unless the
/// view is copy-on-write.
fn write_view(
    object: &mut Object,
    kept: &mut Kept<ViewMut>,
    at: u64,
    len: u64,
    seed: u8,
) -> Result<(), TestCaseError> {
    let range = kept.model.range.start + at..kept.model.range.start + at + len;
    if !object.in_file(&range) {
        return Ok(());
    }
    let bytes = data(seed, len as usize);
    kept.view.write_at(at, &bytes).unwrap();
    let mut back = vec![0; len as usize];
    kept.view.read_at(at, &mut back).unwrap();
    prop_assert!(back == bytes, "a view reads back what it wrote");
    if kept.model.access == Access::CopyOnWrite {
        kept.model.diverged = true;
    } else {
        object.write(range.start, &bytes);
    }
    Ok(())
}

fn valid(range: &Range<u64>, cap: u64) -> bool {
    range.start < range.end && range.end <= cap
}

impl World {
    fn new(kind: Kind, dir: &Path, capacities: [u64; 2], options: StreamOptions) -> Self {
        Self {
            objects: [
                Object::new(Kind::File, &dir.join("first"), capacities[0]),
                Object::new(kind, &dir.join("second"), capacities[1]),
            ],
            views: Default::default(),
            views_mut: Default::default(),
            streams: Default::default(),
            options,
        }
    }

    async fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::View {
                obj,
                handle,
                pick,
                keep,
            } => self.view(obj, handle, pick, keep),
            Op::ReadKept { slot, mutable } => self.read_kept(slot, mutable),
            Op::ViewMut {
                obj,
                handle,
                pick,
                seed,
                keep,
            } => self.view_mut(obj, handle, pick, seed, keep),
            Op::WriteKept {
                slot,
                at,
                len,
                shape,
                seed,
            } => self.write_kept(slot, at, len, shape, seed),
            Op::FlushKept { slot, pick } => self.flush_kept(slot, pick),
            Op::Convert { slot, to_mut } => self.convert(slot, to_mut),
            Op::Stream {
                slot,
                obj,
                handle,
                pick,
            } => self.open_stream(slot, obj, handle, pick),
            Op::Read { slot, len } => self.read(slot, len).await,
            Op::FillBuf { slot, len } => self.fill_buf(slot, len).await,
            Op::Prefetch { slot, len } => self.prefetch(slot, len),
            Op::Write { slot, len, seed } => self.write(slot, len, seed).await,
            Op::Seek { slot, to } => self.seek(slot, to).await,
            Op::Flush { slot } => self.flush(slot, false).await,
            Op::Shutdown { slot } => self.flush(slot, true).await,
            Op::Chunks { slot, size, count } => self.chunks(slot, size, count).await,
            Op::SetLen { obj, choice } => {
                self.set_len(obj, choice);
                Ok(())
            }
            Op::CheckFile { obj } => self.check_file(obj),
        }
    }

    fn view(
        &mut self,
        obj: usize,
        handle: usize,
        pick: Pick,
        keep: bool,
    ) -> Result<(), TestCaseError> {
        let object = &self.objects[obj];
        let range = pick.resolve(object.capacity());
        let result = object.handles[handle].view(range.clone());
        if !valid(&range, object.capacity()) {
            return expect_err(result, ErrorKind::InvalidInput, "view of a bad range");
        }
        let view = result.unwrap();
        prop_assert_eq!(view.offset(), range.start);
        prop_assert_eq!(view.len() as u64, range.end - range.start);
        if object.readable(&range) {
            object.check(range.start, &view, "view")?;
            let mut past = [0u8; 2];
            let past_end = view.read_at(view.len() as u64 - 1, &mut past);
            expect_err(
                past_end,
                ErrorKind::UnexpectedEof,
                "read_at past the end of a view",
            )?;
        }
        if keep {
            let model = ViewModel {
                obj,
                access: object.access(handle),
                range,
                diverged: false,
            };
            self.views[pick.shape as usize % SLOTS] = Some(Kept { view, model });
        }
        Ok(())
    }

    fn read_kept(&self, slot: usize, mutable: bool) -> Result<(), TestCaseError> {
        let (bytes, model): (&[u8], _) = match (mutable, &self.views[slot], &self.views_mut[slot]) {
            (false, Some(k), _) => (&k.view, &k.model),
            (true, _, Some(k)) => (&k.view, &k.model),
            _ => return Ok(()),
        };
        let object = &self.objects[model.obj];
        if object.readable(&model.range) && !model.diverged {
            object.check(model.range.start, bytes, "kept view")?;
        }
        Ok(())
    }

    fn view_mut(
        &mut self,
        obj: usize,
        handle: usize,
        pick: Pick,
        seed: u8,
        keep: bool,
    ) -> Result<(), TestCaseError> {
        let object = &mut self.objects[obj];
        let range = pick.resolve(object.capacity());
        let result = object.handles[handle].view_mut(range.clone());
        let access = object.access(handle);
        if access == Access::Read {
            return expect_err(
                result,
                ErrorKind::PermissionDenied,
                "view_mut of a read-only map",
            );
        }
        if !valid(&range, object.capacity()) {
            return expect_err(result, ErrorKind::InvalidInput, "view_mut of a bad range");
        }
        let model = ViewModel {
            obj,
            access,
            range,
            diverged: false,
        };
        let mut kept = Kept {
            view: result.unwrap(),
            model,
        };
        prop_assert_eq!(kept.view.offset(), kept.model.range.start);
        let len = kept.view.len() as u64;
        write_view(object, &mut kept, 0, len, seed)?;
        if keep {
            self.views_mut[pick.shape as usize % SLOTS] = Some(kept);
        }
        Ok(())
    }

    fn write_kept(
        &mut self,
        slot: usize,
        at: u64,
        len: u64,
        shape: u8,
        seed: u8,
    ) -> Result<(), TestCaseError> {
        let Some(kept) = &mut self.views_mut[slot] else {
            return Ok(());
        };
        let object = &mut self.objects[kept.model.obj];
        let size = kept.view.len() as u64;
        let at = at % size;
        if shape % 8 == 0 {
            // Past the end: refused, and nothing written.
            let bytes = data(seed, (size - at + 1) as usize);
            let result = kept.view.write_at(at, &bytes);
            return expect_err(
                result,
                ErrorKind::WriteZero,
                "write_at past the end of a view",
            );
        }
        write_view(object, kept, at, 1 + len % (size - at), seed)
    }

    fn flush_kept(&self, slot: usize, pick: Pick) -> Result<(), TestCaseError> {
        let Some(kept) = &self.views_mut[slot] else {
            return Ok(());
        };
        let size = kept.view.len() as u64;
        let start = kept.model.range.start;
        let part = pick.resolve(size);
        let result = if pick.shape % 16 == 2 {
            kept.view.flush()
        } else {
            kept.view.flush_range(start + part.start..start + part.end)
        };
        if !valid(&part, size) {
            return expect_err(result, ErrorKind::InvalidInput, "flush of a bad range");
        }
        prop_assert!(result.is_ok(), "flush of a view: {:?}", result);
        Ok(())
    }

    fn convert(&mut self, slot: usize, to_mut: bool) -> Result<(), TestCaseError> {
        if to_mut {
            let Some(kept) = self.views[slot].take() else {
                return Ok(());
            };
            let Kept { view, model } = kept;
            let result = view.make_mut();
            if model.access == Access::Read {
                return expect_err(result, ErrorKind::PermissionDenied, "make_mut");
            }
            let view = result.unwrap();
            self.views_mut[slot] = Some(Kept { view, model });
        } else {
            let Some(kept) = self.views_mut[slot].take() else {
                return Ok(());
            };
            let Kept { view, model } = kept;
            let view = view.make_read_only().unwrap();
            self.views[slot] = Some(Kept { view, model });
        }
        Ok(())
    }

    fn open_stream(
        &mut self,
        slot: usize,
        obj: usize,
        handle: usize,
        pick: Pick,
    ) -> Result<(), TestCaseError> {
        let object = &self.objects[obj];
        let range = pick.resolve(object.capacity());
        let result = object.handles[handle].stream_with(range.clone(), &self.options);
        if !valid(&range, object.capacity()) {
            return expect_err(result, ErrorKind::InvalidInput, "stream of a bad range");
        }
        let stream = result.unwrap();
        prop_assert_eq!(stream.len(), range.end - range.start);
        let hit = !object.readable(&range);
        self.streams[slot] = Some(Stream {
            stream,
            obj,
            access: object.access(handle),
            range,
            pos: 0,
            hit,
            shut_down: false,
            diverged: false,
        });
        Ok(())
    }

    async fn read(&mut self, slot: usize, len: usize) -> Result<(), TestCaseError> {
        let Some(s) = &mut self.streams[slot] else {
            return Ok(());
        };
        let mut buf = vec![0u8; len];
        let n = match s.stream.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => return stream_error(s.hit, e, "read"),
        };
        s.cursor()
            .check(&self.objects[s.obj], n, len, Some(&buf[..n]))?;
        s.advance(n)
    }

    async fn fill_buf(&mut self, slot: usize, len: usize) -> Result<(), TestCaseError> {
        let Some(s) = &mut self.streams[slot] else {
            return Ok(());
        };
        let object = &self.objects[s.obj];
        let cursor = s.cursor();
        let lent = match s.stream.fill_buf().await {
            Ok(lent) => lent,
            Err(e) => return stream_error(s.hit, e, "fill_buf"),
        };
        let n = lent.len();
        // Over pages the file lost, a lent slice reads zeros (the crate's
        // SIGBUS cover), not the model's bytes: touch it all, check it only
        // where the file covers it.
        touch(lent);
        let covered = object.readable(&(cursor.at..cursor.at + n as u64));
        cursor.check(object, n, usize::MAX, covered.then_some(lent))?;
        let consumed = n.min(len);
        s.stream.consume(consumed);
        s.advance(consumed)
    }

    fn prefetch(&mut self, slot: usize, len: u64) -> Result<(), TestCaseError> {
        let Some(s) = &mut self.streams[slot] else {
            return Ok(());
        };
        match s.stream.prefetch_blocking(len) {
            Ok(()) => Ok(()),
            Err(e) => stream_error(s.hit, e, "prefetch_blocking"),
        }
    }

    async fn write(&mut self, slot: usize, len: usize, seed: u8) -> Result<(), TestCaseError> {
        let Some(s) = &mut self.streams[slot] else {
            return Ok(());
        };
        let object = &mut self.objects[s.obj];
        let bytes = data(seed, len);
        let result = s.stream.write(&bytes).await;
        if s.access == Access::Read {
            return expect_err(
                result,
                ErrorKind::PermissionDenied,
                "write to a read-only stream",
            );
        }
        if s.shut_down {
            return expect_err(result, ErrorKind::BrokenPipe, "write after shutdown");
        }
        let private = s.access == Access::CopyOnWrite;
        // A copy-on-write stream copies pages as it makes them writable,
        // ahead of the cursor.
        s.diverged |= private;
        let cursor = s.cursor();
        let n = match result {
            Ok(n) => n,
            Err(e) => {
                if !private {
                    // Part of the bytes may have reached the file.
                    object.forget(cursor.at..cursor.at + cursor.left.min(len as u64));
                }
                return stream_error(s.hit, e, "write");
            }
        };
        cursor.check(object, n, len, None)?;
        if !private {
            let put = s.at()..s.at() + n as u64;
            prop_assert!(
                n == 0 || object.in_file(&put),
                "write {:?} past the cut at {} returned Ok",
                put,
                object.len
            );
            object.write(s.at(), &bytes[..n]);
        }
        s.advance(n)
    }

    async fn seek(&mut self, slot: usize, to: Seek) -> Result<(), TestCaseError> {
        let Some(s) = &mut self.streams[slot] else {
            return Ok(());
        };
        let (from, target) = match to {
            Seek::Start(at) => (SeekFrom::Start(at), Some(at)),
            Seek::Current(delta) => (SeekFrom::Current(delta), s.pos.checked_add_signed(delta)),
            Seek::End(delta) => (SeekFrom::End(delta), s.len().checked_add_signed(delta)),
        };
        let result = s.stream.seek(from).await;
        match target {
            Some(target) => {
                prop_assert_eq!(result.ok(), Some(target));
                s.pos = target;
            }
            None => expect_err(result, ErrorKind::InvalidInput, "seek before the start")?,
        }
        prop_assert_eq!(s.stream.position(), s.pos);
        Ok(())
    }

    async fn flush(&mut self, slot: usize, shutdown: bool) -> Result<(), TestCaseError> {
        let Some(s) = &mut self.streams[slot] else {
            return Ok(());
        };
        let result = if shutdown {
            s.stream.shutdown().await
        } else {
            s.stream.flush().await
        };
        match result {
            Ok(()) => {
                s.shut_down |= shutdown;
                prop_assert_eq!(s.stream.stats().dirty_bytes, 0);
                Ok(())
            }
            // A hit stream may flush with Ok (its writes may all have been
            // below the cut) or fail; `tests/faults.rs` covers lost writes.
            Err(e) => stream_error(s.hit, e, "flush"),
        }
    }

    async fn chunks(
        &mut self,
        slot: usize,
        size: usize,
        count: usize,
    ) -> Result<(), TestCaseError> {
        let Some(s) = self.streams[slot].take() else {
            return Ok(());
        };
        let object = &self.objects[s.obj];
        let mut cursor = s.cursor();
        let mut chunks = s.stream.chunks(size);
        if size == 0 {
            let first = chunks.next().await.expect("an error, not the end");
            return expect_err(first, ErrorKind::InvalidInput, "chunks of size 0");
        }
        for _ in 0..count {
            let chunk = match chunks.next().await {
                None => {
                    prop_assert!(cursor.left == 0, "chunks ended {} bytes early", cursor.left);
                    return Ok(());
                }
                Some(Err(e)) => return stream_error(s.hit, e, "chunks"),
                Some(Ok(chunk)) => chunk,
            };
            let n = chunk.len();
            // As for `fill_buf`: touched all over, checked where covered.
            touch(&chunk);
            let covered = object.readable(&(cursor.at..cursor.at + n as u64));
            cursor.check(object, n, size, covered.then_some(&chunk))?;
            cursor.at += n as u64;
            cursor.left -= n as u64;
        }
        Ok(())
    }

    fn set_len(&mut self, obj: usize, choice: u64) {
        let object = &mut self.objects[obj];
        let capacity = object.capacity();
        let pages = capacity.div_ceil(PAGE);
        let len = (choice % (pages + 1) * PAGE).min(capacity);
        object.set_len(len);
        for s in self.streams.iter_mut().flatten() {
            if s.obj == obj && !object.readable(&s.range) {
                s.hit = true;
            }
        }
    }

    fn check_file(&self, obj: usize) -> Result<(), TestCaseError> {
        let object = &self.objects[obj];
        let len = object.outside.metadata().unwrap().len();
        prop_assert_eq!(len, object.len);
        let mut bytes = vec![0u8; len as usize];
        object.outside.read_exact_at(&mut bytes, 0).unwrap();
        object.check(0, &bytes, "file")
    }
}

fn capacity() -> impl Strategy<Value = u64> {
    // 1 to 6 pages, whole or with a partial last page.
    (0..6u64, prop_oneof![Just(PAGE), 1..PAGE]).prop_map(|(pages, tail)| pages * PAGE + tail)
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::File), Just(Kind::Shared), Just(Kind::Anonymous)]
}

fn options() -> impl Strategy<Value = StreamOptions> {
    // Mostly small windows and dirty limits, so that prefetch and write-back
    // jobs run within a case's few pages; sometimes the defaults, whose
    // window covers the whole object at once.
    let small = (1..4u64, 1..8u64).prop_map(|(read_ahead, dirty)| {
        StreamOptions::new()
            .read_ahead(read_ahead * PAGE)
            .max_read_ahead(4 * PAGE)
            .dirty_limit(dirty * PAGE)
    });
    prop_oneof![3 => small, 1 => Just(StreamOptions::new())]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn interleaved_views_streams_and_truncations_match_the_model(
        kind in kind(),
        capacities in (capacity(), capacity()),
        options in options(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let mut world = World::new(kind, dir.path(), [capacities.0, capacities.1], options);
            for op in ops {
                world.apply(op).await?;
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}

/// Reads every byte of `bytes`, so that a lost page would fault here.
fn touch(bytes: &[u8]) {
    std::hint::black_box(bytes.iter().fold(0u8, |sum, &b| sum ^ b));
}
