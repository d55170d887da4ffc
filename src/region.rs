//! A region: part of one mapping of an object, shared behind an `Arc` by a
//! stream view's windows (one region per mapped window), its background
//! work and the zero-copy `Bytes` it hands out.
//!
//! ```text
//!   Windows ─────┐
//!   prefetch job ┼──> Arc<Region> ──> Arc<Mapping> ──> MmapRaw (start..start+len of the object)
//!   Bytes chunk ─┘    (base, len)          └─────────> Arc<Object> (fd, access, capacity)
//! ```
//!
//! A region usually has its mapping to itself. A shared one (an HTTP
//! server's mapping of a whole file) is sliced into regions for many
//! streams at no cost: no `mmap` per stream, and no page released behind
//! any of them.
//!
//! Bytes go in and out through [`guarded_copy`](crate::sys::guarded_copy),
//! so a file truncated underneath yields an error instead of a `SIGBUS`
//! crash. A region lends its memory out (zero-copy `Bytes`, `fill_buf`
//! slices) only while it is covered by the `SIGBUS` handler
//! ([`Cover`](crate::sys::Cover)), taken at the first loan and dropped
//! before the mapping is unmapped: a page lost under a loan then reads as
//! zeros instead of killing the reader. When the handler's table is full, the
//! region hands out copies instead. After a lost page the region is
//! *poisoned* (the lost pages now read as zeros) and refuses all further
//! access, as do all regions of its mapping.

use std::io;
use std::mem::ManuallyDrop;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use memmap2::MmapRaw;

use crate::object::{Access, Object};
use crate::paging::pacing::{TEARDOWN_STEP, UNMAP_OFF_WORKER};
use crate::range::{steps, Span};
use crate::sys::{self, Cover, Guarded, Populate};
use crate::Pager;

/// A part of one mapping of an object: the whole mapping, as [`new`]
/// makes it, or a slice of another region's mapping, as [`slice`] makes it.
///
/// [`new`]: Region::new
/// [`slice`]: Region::slice
#[derive(Debug)]
pub(crate) struct Region {
    mapping: Arc<Mapping>,
    /// Where the region starts in the mapping.
    base: usize,
    len: usize,
    /// Whether other regions may share the mapping (made by `new_shared`,
    /// or a slice of such a region): its pages are then never released,
    /// since another region's reader may be reading them.
    shared: bool,
}

/// One mapping of a span of an object, shared by the regions of it.
#[derive(Debug)]
struct Mapping {
    /// Taken out only by `drop`.
    map: ManuallyDrop<MmapRaw>,
    /// Where the mapping starts in the object.
    offset: u64,
    object: Arc<Object>,
    /// Set when a guarded copy lost a page.
    poisoned: AtomicBool,
    /// Taken at the first loan of the memory; `None` inside if the handler's
    /// table was full.
    cover: OnceLock<Option<Cover>>,
    /// Zero-copy `Bytes` lent out and not yet dropped (each `Loan` counts
    /// once, however many clones of its `Bytes` there are).
    loans: AtomicUsize,
}

impl Region {
    /// Maps `span` of `object` for one user (a stream, a tail): blocking
    /// (`mmap` takes the process's memory-map lock).
    pub(crate) fn new(object: Arc<Object>, span: Span) -> io::Result<Self> {
        Self::map(object, span, false)
    }

    /// Maps `span` of `object` for regions [`slice`](Self::slice)d from it,
    /// which many users share: blocking, as [`new`](Self::new).
    #[cfg(feature = "http")]
    pub(crate) fn new_shared(object: Arc<Object>, span: Span) -> io::Result<Self> {
        Self::map(object, span, true)
    }

    fn map(object: Arc<Object>, span: Span, shared: bool) -> io::Result<Self> {
        let map = object.map_raw(span)?;
        let len = map.len();
        let mapping = Mapping {
            map: ManuallyDrop::new(map),
            offset: span.start,
            object,
            poisoned: AtomicBool::new(false),
            cover: OnceLock::new(),
            loans: AtomicUsize::new(0),
        };
        Ok(Self {
            mapping: Arc::new(mapping),
            base: 0,
            len,
            shared,
        })
    }

    /// The bytes `range` of this region (made by
    /// [`new_shared`](Self::new_shared)), as a region of their own over the
    /// same mapping: no system call, and safe to call on an async worker.
    ///
    /// # Panics
    ///
    /// If `range` does not lie inside the region, or the region was not
    /// made to be shared (bugs of the caller).
    #[cfg(feature = "http")]
    pub(crate) fn slice(&self, range: Range<u64>) -> Self {
        assert!(self.shared, "only a shared region is sliced");
        assert!(
            range.start <= range.end && range.end <= self.len(),
            "slice out of the region"
        );
        Self {
            mapping: Arc::clone(&self.mapping),
            base: self.base + range.start as usize,
            len: (range.end - range.start) as usize,
            shared: true,
        }
    }

    /// The length of the region in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len as u64
    }

    /// The object the region maps.
    pub(crate) fn object(&self) -> &Object {
        &self.mapping.object
    }

    /// The object the region maps, to share.
    #[cfg(feature = "http")]
    pub(crate) fn object_arc(&self) -> &Arc<Object> {
        &self.mapping.object
    }

    /// The addresses of the region's bytes, for as long as it lives.
    #[cfg(feature = "http")]
    pub(crate) fn addresses(&self) -> Range<usize> {
        let start = self.mapping.map.as_ptr() as usize + self.base;
        start..start + self.len
    }

    /// A pointer to byte `at` of the region, after checking that
    /// `at..at + len` lies inside it and the region is not poisoned.
    fn ptr(&self, at: u64, len: usize) -> io::Result<*mut u8> {
        self.check()?;
        let end = at.checked_add(len as u64);
        assert!(
            end.is_some_and(|end| end <= self.len()),
            "region access out of bounds"
        );
        // SAFETY: `at + len <= self.len()` and the region lies inside the
        // mapping, so the offset stays inside the mapping.
        Ok(unsafe { self.mapping.map.as_mut_ptr().add(self.base + at as usize) })
    }

    /// `UnexpectedEof` once a page of the region was lost, in a guarded
    /// copy or under a loan.
    pub(crate) fn check(&self) -> io::Result<()> {
        let mapping = &*self.mapping;
        let lost_under_loan = mapping
            .cover
            .get()
            .and_then(Option::as_ref)
            .is_some_and(Cover::is_poisoned);
        if lost_under_loan || mapping.poisoned.load(Ordering::Acquire) {
            return Err(sys::truncated());
        }
        Ok(())
    }

    fn poison_on_error(&self, result: io::Result<()>) -> io::Result<()> {
        if result.is_err() {
            self.mapping.poisoned.store(true, Ordering::Release);
        }
        result
    }

    /// Copies bytes `at..at + len` of the region to `dst`.
    ///
    /// # Safety
    ///
    /// `dst` must be valid for writes of `len` bytes and not overlap the region.
    pub(crate) unsafe fn copy_out(&self, at: u64, dst: *mut u8, len: usize) -> io::Result<()> {
        let src = self.ptr(at, len)?;
        // SAFETY: `src` covers `len` bytes of the mapping (checked by `ptr`);
        // `dst` is valid and disjoint (caller).
        let result = unsafe { sys::guarded_copy(dst, src, len, Guarded::Source) };
        self.poison_on_error(result)
    }

    /// Copies `src` into the region at `at`. The object must be writable.
    pub(crate) fn copy_in(&self, at: u64, src: &[u8]) -> io::Result<()> {
        let dst = self.ptr(at, src.len())?;
        // SAFETY: `dst` covers `src.len()` bytes of a writable mapping
        // (checked by `ptr`; writability by the caller's access check); a
        // borrowed slice cannot overlap memory we write through a raw pointer
        // that no one else borrows mutably.
        let result =
            unsafe { sys::guarded_copy(dst, src.as_ptr(), src.len(), Guarded::Destination) };
        self.poison_on_error(result)
    }

    /// Lends bytes `at..at + len` of the region out, covered by the
    /// `SIGBUS` handler: a page lost under the loan reads as zeros and
    /// poisons the region. `None` when the handler's table is full, or while
    /// pages of the mapping are being released: copy instead.
    ///
    /// The caller should have made the pages resident (a stream hands out
    /// only prefetched bytes), so that the borrower does not fault on the
    /// disk.
    pub(crate) fn lend(self: &Arc<Self>, at: u64, len: usize) -> io::Result<Option<Loan>> {
        self.ptr(at, len)?;
        if len > 0 && self.cover().is_none() {
            return Ok(None);
        }
        Ok(Loan::new(Arc::clone(self), at, len))
    }

    /// The mapping's cover, taken on the first call.
    fn cover(&self) -> Option<&Cover> {
        let mapping = &*self.mapping;
        let cover = mapping.cover.get_or_init(|| {
            // SAFETY: the whole mapping is ours, mapped in `new`; the
            // mapping's `drop` drops the cover before it unmaps.
            unsafe { Cover::new(mapping.map.as_ptr(), mapping.map.len()) }
        });
        cover.as_ref()
    }

    /// Bytes `at..at + len` of the region as `Bytes` that keep the region
    /// alive: a loan (see [`lend`](Self::lend)) if the region is covered,
    /// else a guarded copy.
    pub(crate) fn bytes(self: &Arc<Self>, at: u64, len: usize) -> io::Result<Bytes> {
        if let Some(loan) = self.lend(at, len)? {
            return Ok(Bytes::from_owner(loan));
        }
        let mut copy = Vec::with_capacity(len);
        // SAFETY: `copy` has room for `len` bytes and is not the mapping.
        unsafe { self.copy_out(at, copy.as_mut_ptr(), len)? };
        // SAFETY: `copy_out` initialised `len` bytes.
        unsafe { copy.set_len(len) };
        Ok(Bytes::from(copy))
    }

    /// Bytes `range` of the region as zero-copy `Bytes` (as
    /// [`bytes`](Self::bytes)) if they can be read now without waiting on
    /// the disk: `mincore` (where the kernel tells the truth) finds every
    /// page in memory and the file still covers them (a file cut inside a
    /// page keeps that page resident). `None` otherwise: a stream's
    /// prefetcher must fault them in, off the worker.
    #[cfg(feature = "http")]
    pub(crate) fn resident_bytes(self: &Arc<Self>, range: Range<u64>) -> io::Result<Option<Bytes>> {
        let resident = self.object().mincore_is_truthful()
            && self.is_resident(range.clone())?
            && self.file_covers(&range);
        if !resident {
            return Ok(None);
        }
        let len = (range.end - range.start) as usize;
        self.bytes(range.start, len).map(Some)
    }

    /// Starts reading exactly the pages of `range` from the file, without
    /// waiting (see [`sys::will_need`]).
    pub(crate) fn will_need(&self, range: Range<u64>) -> io::Result<()> {
        let len = (range.end - range.start) as usize;
        let ptr = self.ptr(range.start, len)?;
        // SAFETY: the range lies inside the live mapping (checked by `ptr`).
        unsafe { sys::will_need(ptr, len) };
        Ok(())
    }

    /// Faults in the pages of `range`, blocking. Call it off the async workers.
    ///
    /// The kernel tells only that a page could not be faulted in. Past the
    /// end of the file that is `UnexpectedEof` (truncated). If the file
    /// covers the range, either it was cut and has grown back since, or the
    /// file system refused the page; a second try tells them apart. A refusal
    /// is, for writing, most likely no space for a page of a sparse file
    /// (`StorageFull`), for reading an I/O error.
    pub(crate) fn populate(&self, range: Range<u64>, how: Populate) -> io::Result<()> {
        const TRIES: usize = 2;
        let len = (range.end - range.start) as usize;
        let ptr = self.ptr(range.start, len)?;
        for _ in 0..TRIES {
            // SAFETY: the range lies inside the live mapping (checked by
            // `ptr`). A failure (pages past the end of the file) changes no
            // mapping, so it does not poison the region.
            match unsafe { sys::populate(ptr, len, how) } {
                // A file cut inside the range's last page still lets that
                // page fault in, the rest of it zeros: only the file's
                // length tells (one `fstat`, off the workers).
                Ok(()) if !self.file_covers(&range) => return Err(sys::truncated()),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && self.file_covers(&range) => {}
                result => return result,
            }
        }
        Err(refused(how))
    }

    /// Whether the object's file reaches past `range` (of the region): one
    /// `fstat`.
    pub(crate) fn file_covers(&self, range: &Range<u64>) -> bool {
        let size = self.object().file.metadata().map(|m| m.len());
        size.is_ok_and(|size| size >= self.object_offset(range.end))
    }

    /// Where byte `at` of the region lies in its object.
    pub(crate) fn object_offset(&self, at: u64) -> u64 {
        self.mapping.offset + self.base as u64 + at
    }

    /// Drops the page-table entries of the whole pages inside `range`
    /// (their contents stay in the file: only for shared mappings, a no-op
    /// for copy-on-write ones). Writing pages back write-protects every
    /// page still mapped, with a TLB flush of its own; for pages no longer
    /// mapped there is nothing to protect. The next touch of such a page
    /// faults it in again.
    ///
    /// A region that shares its mapping releases nothing: another region's
    /// reader may be reading those pages, and would fault them in again.
    /// Nor does a copy-on-write region, or one with a live loan (see
    /// [`may_release`]). Returns whether it released.
    ///
    /// [`may_release`]: Self::may_release
    pub(crate) fn release(&self, range: Range<u64>) -> io::Result<bool> {
        if !self.may_release() {
            return Ok(false);
        }
        let len = (range.end - range.start) as usize;
        let ptr = self.ptr(range.start, len)?;
        let loans = &self.mapping.loans;
        // Acquire: the reads of every loan dropped before happen before the
        // release. While the flag is up, no loan is made (see `Loan::new`).
        if loans
            .compare_exchange(0, RELEASING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Ok(false); // a loan was made since `may_release`
        }
        // SAFETY: the range lies inside the live mapping (checked by `ptr`),
        // which is shared (checked above): DONTNEED changes no contents. No
        // loan of the mapping is alive, and none is made until the flag is
        // down again.
        unsafe { sys::drop_page_tables(ptr, len) };
        // Release: a loan made after this sees the page tables dropped.
        loans.fetch_sub(RELEASING, Ordering::Release);
        Ok(true)
    }

    /// Whether [`release`](Self::release) may drop pages of the region now:
    /// not while some zero-copy `Bytes` of it (or a `fill_buf` slice) is
    /// alive, and never for a shared or copy-on-write region (releasing
    /// would throw away its private copies). A loan made after this answer
    /// only makes the release give up.
    pub(crate) fn may_release(&self) -> bool {
        !self.shared
            && self.object().access != Access::CopyOnWrite
            && self.mapping.loans.load(Ordering::Acquire) == 0
    }

    /// Makes the bytes of `range` durable in the file (`msync(MS_SYNC)`).
    /// Blocking.
    ///
    /// `msync` succeeds on pages that a truncation took away, so the file's
    /// length is checked after it: bytes past the end are not in the file.
    pub(crate) fn sync(&self, range: Range<u64>) -> io::Result<()> {
        let len = (range.end - range.start) as usize;
        self.mapping
            .map
            .flush_range(self.base + range.start as usize, len)?;
        if !self.file_covers(&range) {
            return Err(sys::truncated());
        }
        Ok(())
    }

    /// Reads a byte of every page of `range`, so that the calling thread
    /// (a background job) pays what the first touch of freshly read pages
    /// costs, not the reader after it. Blocking.
    pub(crate) fn touch(&self, range: Range<u64>) -> io::Result<()> {
        let len = (range.end - range.start) as usize;
        let ptr = self.ptr(range.start, len)?;
        // SAFETY: the range lies inside the live, readable mapping (checked
        // by `ptr`).
        let result = unsafe { sys::guarded_touch(ptr, len) };
        self.poison_on_error(result)
    }

    /// Whether every page of `range` is in memory (a hint; see
    /// [`sys::mincore_is_truthful`]).
    pub(crate) fn is_resident(&self, range: Range<u64>) -> io::Result<bool> {
        let len = (range.end - range.start) as usize;
        let ptr = self.ptr(range.start, len)?;
        // SAFETY: the range lies inside the live mapping (checked by `ptr`).
        unsafe { sys::is_resident(ptr, len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Uncovered while still mapped (the contract of `Cover::new`).
        drop(self.cover.take());
        // SAFETY: `drop` runs once and nothing uses `self.map` after it.
        let map = unsafe { ManuallyDrop::take(&mut self.map) };
        // `munmap` takes the process's memory-map lock for writing, and
        // waits there behind the pager's populates (82 ms once, with 1024
        // streams in `scale --quick`); tearing down the page tables of a
        // populated GiB takes tens of milliseconds more. Either would stall
        // an async worker, so those go to the pager's reclaim thread. A small
        // region while the pager is idle is unmapped right here: a trip to
        // the pager per region cost a server of hot 64 KiB ranges a third of
        // its requests (`SERVERS=mapview CACHES=hot WORKLOADS=ranges bash
        // benches/serve_bench.sh`: 7730 against 12107 req/s).
        if map.len() < UNMAP_OFF_WORKER && Pager::current().is_idle() {
            return;
        }
        // A pager that cannot take the task drops it, which unmaps right
        // here: nothing leaks either way.
        let _ = Pager::current().reclaim(move || unmap_in_steps(map));
    }
}

/// Unmaps `map`, dropping its page tables a step at a time first, so that
/// neither the CPU nor the process's memory-map lock is held for long.
fn unmap_in_steps(map: MmapRaw) {
    for step in steps(0..map.len() as u64, TEARDOWN_STEP) {
        // SAFETY: the step lies inside `map`, which is owned here and no
        // longer reachable by anyone: no one reads its pages again.
        unsafe {
            sys::drop_page_tables(
                map.as_ptr().add(step.start as usize),
                (step.end - step.start) as usize,
            )
        };
        std::thread::yield_now();
    }
}

/// The error for pages of a file that covers them but that the file system
/// would not fault in.
fn refused(how: Populate) -> io::Error {
    match how {
        Populate::Write => io::Error::new(
            io::ErrorKind::StorageFull,
            "the file system would not provide pages to write: no space for a \
             sparse file's pages (or a quota or I/O error)",
        ),
        Populate::Read => io::Error::other(
            "the file system would not read the mapped file's pages (an I/O error)",
        ),
    }
}

/// Set in a mapping's `loans` while pages of it are being released: no loan
/// is made meanwhile (the borrower copies instead), so memory behind a live
/// loan is never released, whichever thread releases.
const RELEASING: usize = 1 << (usize::BITS - 1);

/// Bytes `at..at + len` of a covered region, kept alive by an `Arc`: the
/// owner behind a zero-copy [`Bytes`], or behind a `fill_buf` slice.
#[derive(Debug)]
pub(crate) struct Loan {
    region: Arc<Region>,
    at: u64,
    len: usize,
}

impl Loan {
    /// A loan, counted in the mapping's `loans`; `None` while a release
    /// of the mapping's pages is under way.
    fn new(region: Arc<Region>, at: u64, len: usize) -> Option<Self> {
        let loans = &region.mapping.loans;
        // Acquire: a release that ended before is done with the page tables.
        if loans.fetch_add(1, Ordering::Acquire) & RELEASING != 0 {
            loans.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Self { region, at, len })
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        // Release: the reads of the loan happen before a release that sees
        // the count drop.
        self.region.mapping.loans.fetch_sub(1, Ordering::Release);
    }
}

impl AsRef<[u8]> for Loan {
    fn as_ref(&self) -> &[u8] {
        let region = &*self.region;
        let ptr = region.mapping.map.as_ptr();
        // SAFETY: `Region::lend` checked that the bytes lie inside the
        // region, which `self.region` keeps mapped and covered: a page lost
        // later becomes a readable zero page on the first touch.
        unsafe { std::slice::from_raw_parts(ptr.add(region.base + self.at as usize), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Backing;

    const LEN: u64 = 16 * 4096;

    /// A private region over a temporary file of `LEN` bytes.
    fn region() -> Arc<Region> {
        let file = tempfile::tempfile().unwrap();
        file.set_len(LEN).unwrap();
        let object = Object {
            file,
            access: Access::Read,
            capacity: LEN,
            backing: Backing::Persisted,
            mincore_truthful: Default::default(),
        };
        let span = Span { start: 0, len: LEN };
        Arc::new(Region::new(Arc::new(object), span).unwrap())
    }

    #[test]
    fn a_live_loan_keeps_its_mapping_from_being_released() {
        let region = region();
        let loan = region.bytes(0, 4096).unwrap();
        assert!(!region.may_release());
        assert!(!region.release(0..LEN).unwrap());
        drop(loan);
        assert!(region.may_release());
        assert!(region.release(0..LEN).unwrap());
    }

    #[test]
    fn no_loan_is_made_while_a_release_runs() {
        let region = region();
        // As `release` holds it, between its check and its `madvise`.
        region.mapping.loans.store(RELEASING, Ordering::Relaxed);
        assert!(region.lend(0, 4096).unwrap().is_none());
        // `bytes` copies instead, and the flag is all that is counted.
        let copy = region.bytes(0, 4096).unwrap();
        assert!(copy.iter().all(|&b| b == 0));
        assert_eq!(region.mapping.loans.load(Ordering::Relaxed), RELEASING);
        assert!(!region.release(0..LEN).unwrap()); // one release at a time

        region.mapping.loans.store(0, Ordering::Relaxed);
        let loan = region.lend(0, 4096).unwrap();
        assert!(loan.is_some());
        assert_eq!(region.mapping.loans.load(Ordering::Relaxed), 1);
    }
}
