//! [`Windows`]: a stream's range, mapped a window at a time, and only on the
//! pager.
//!
//! ```text
//!   stream range |...w0...|...w1...|...w2...|...w3...|...w4...|
//!                          [ mapped ][ mapped ]        (w1: the cursor's window,
//!                               ^ cursor                w2: the next, mapped ahead)
//!   job on the pager:  map_at(pos) (mmap, if not yet mapped), then populate
//!   poll on a worker:  at(pos) (a lookup, never an mmap); settle(pos) lets
//!                      go of every window but the cursor's and the next
//! ```
//!
//! `mmap` takes the process's memory-map lock for writing, and so waits
//! behind every populate of the process that holds it for reading while it
//! waits on the disk; an async worker must never make that call. So only
//! the stream's background jobs (and [`ViewStream::prefetch_blocking`],
//! which is for blocking contexts) map, and a poll finds a window mapped,
//! or waits for the job that maps it.
//!
//! Windows are [`MAP_WINDOW_MIN`] or more, so that a stream maps a few
//! times per window of read-ahead at most; bounding them bounds the address
//! space and page tables of a stream over any file, even one larger than
//! the address space. A window let go of is unmapped when its last user
//! drops it: a job still working on it, or a zero-copy `Bytes` lent from
//! it. A window whose pages a truncation took away fails the stream for
//! good, even once the cursor has left it.
//!
//! [`ViewStream::prefetch_blocking`]: crate::ViewStream::prefetch_blocking

use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::object::Object;
use crate::paging::pacing::{MAP_WINDOW_MIN, MAP_WINDOW_READ_AHEADS};
use crate::range::Span;
use crate::region::Region;
use crate::sys;

/// A mapped window: its region and where it starts in the stream.
#[derive(Debug, Clone)]
pub(crate) struct Mapped {
    pub(crate) start: u64,
    pub(crate) region: Arc<Region>,
}

impl Mapped {
    /// Where stream offset `pos` lies in the window's region.
    pub(crate) fn local(&self, pos: u64) -> u64 {
        pos - self.start
    }

    /// The stream offsets the window covers.
    fn range(&self) -> Range<u64> {
        self.start..self.end()
    }

    /// Where the window ends in the stream.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.region.len()
    }
}

/// What the stream and its jobs share of the mappings.
#[derive(Debug, Default)]
struct Table {
    /// The windows mapped now.
    mapped: Vec<Mapped>,
    /// Windows let go of that something (a lent `Bytes`) may still hold:
    /// a page lost under such a loan still fails the stream.
    retired: Vec<Weak<Region>>,
    /// A window lost a page: the stream stays failed.
    failed: bool,
}

/// The mappings of a stream's range, a window at a time.
#[derive(Debug)]
pub(crate) struct Windows {
    object: Arc<Object>,
    /// Where the stream's range starts in the object.
    offset: u64,
    len: u64,
    /// The size of every window but the last (a multiple of the page size).
    size: u64,
    table: Mutex<Table>,
}

/// The window size for a stream whose read-ahead window grows to
/// `max_read_ahead`, or `asked` (at least a page, rounded up to pages).
pub(crate) fn window_size(max_read_ahead: u64, asked: Option<u64>) -> u64 {
    let page = sys::page_size() as u64;
    let size = asked.unwrap_or_else(|| {
        max_read_ahead
            .saturating_mul(MAP_WINDOW_READ_AHEADS)
            .max(MAP_WINDOW_MIN)
    });
    // At most half the address space, so that no window is too large to map.
    let size = size.clamp(page, 1 << 62);
    size.div_ceil(page) * page
}

impl Windows {
    /// The windows of `span` of `object`, `size` bytes each (a multiple of
    /// the page size): none mapped yet.
    pub(crate) fn new(object: Arc<Object>, span: Span, size: u64) -> Self {
        Self {
            object,
            offset: span.start,
            len: span.len,
            size,
            table: Mutex::default(),
        }
    }

    /// One window, mapped already: all of `region`.
    #[cfg(feature = "http")]
    pub(crate) fn whole(region: Arc<Region>) -> Self {
        let table = Table {
            mapped: vec![Mapped {
                start: 0,
                region: Arc::clone(&region),
            }],
            ..Table::default()
        };
        Self {
            object: Arc::clone(region.object_arc()),
            offset: region.object_offset(0),
            len: region.len(),
            size: u64::MAX,
            table: Mutex::new(table),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Nothing panics while holding the lock; recover the data anyway.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The length of the stream's range.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The object the stream maps.
    pub(crate) fn object(&self) -> &Object {
        &self.object
    }

    /// Where byte `at` of the stream lies in its object.
    pub(crate) fn object_offset(&self, at: u64) -> u64 {
        self.offset + at
    }

    /// The stream offsets of the window that holds `at`.
    pub(crate) fn window(&self, at: u64) -> Range<u64> {
        let start = at - at % self.size;
        start..start.saturating_add(self.size).min(self.len)
    }

    /// `range` cut at the window boundaries.
    pub(crate) fn pieces(&self, range: Range<u64>) -> impl Iterator<Item = Range<u64>> + '_ {
        let mut start = range.start;
        std::iter::from_fn(move || {
            (start < range.end).then(|| {
                let end = self.window(start).end.min(range.end);
                let piece = start..end;
                start = end;
                piece
            })
        })
    }

    /// The mapped window that holds `pos`, if it is mapped: a lookup, no
    /// system call.
    pub(crate) fn at(&self, pos: u64) -> Option<Mapped> {
        let table = self.table();
        table
            .mapped
            .iter()
            .find(|mapped| mapped.range().contains(&pos))
            .cloned()
    }

    /// The window that holds `pos` (below the length), mapped now if it is
    /// not yet. **Blocking** (`mmap`): only on the pager, or on a thread
    /// that may block.
    pub(crate) fn map_at(&self, pos: u64) -> io::Result<Mapped> {
        if let Some(mapped) = self.at(pos) {
            return Ok(mapped);
        }
        let window = self.window(pos);
        let span = Span {
            start: self.object_offset(window.start),
            len: window.end - window.start,
        };
        // Mapped outside the lock: the stream's polls take it.
        let region = Arc::new(Region::new(Arc::clone(&self.object), span)?);
        let mut table = self.table();
        if let Some(mapped) = table.mapped.iter().find(|m| m.start == window.start) {
            return Ok(mapped.clone()); // mapped meanwhile: ours goes
        }
        let mapped = Mapped {
            start: window.start,
            region,
        };
        table.mapped.push(mapped.clone());
        Ok(mapped)
    }

    /// `UnexpectedEof` once a window lost a page (in a guarded copy or
    /// under a loan), for good. Then lets go of every window but the one
    /// that holds `pos` and the next (the drop unmaps them once no job and
    /// no loan holds them).
    pub(crate) fn settle(&self, pos: u64) -> io::Result<()> {
        let gone = self.retire_all_but(pos)?;
        // Unmapped after the lock is released: on the pager when large (see
        // `Region`), and a job that maps meanwhile need not wait.
        drop(gone);
        Ok(())
    }

    /// [`settle`](Self::settle) under the lock: the windows let go of.
    fn retire_all_but(&self, pos: u64) -> io::Result<Vec<Mapped>> {
        let mut table = self.table();
        let table = &mut *table;
        table.retired.retain(|weak| weak.strong_count() > 0);
        let lost = table.mapped.iter().any(|m| m.region.check().is_err())
            || table
                .retired
                .iter()
                .filter_map(Weak::upgrade)
                .any(|region| region.check().is_err());
        table.failed |= lost;
        if table.failed {
            return Err(sys::truncated());
        }
        let keep = self.window(pos.min(self.len.saturating_sub(1))).start;
        let next = keep.saturating_add(self.size);
        let stays = |m: &Mapped| m.start == keep || m.start == next;
        if table.mapped.iter().all(stays) {
            return Ok(Vec::new()); // the steady state: no allocation
        }
        let (kept, gone): (Vec<Mapped>, Vec<Mapped>) = std::mem::take(&mut table.mapped)
            .into_iter()
            .partition(stays);
        table.mapped = kept;
        let retired = gone.iter().map(|m| Arc::downgrade(&m.region));
        table.retired.extend(retired);
        Ok(gone)
    }

    /// Whether every page of `range` (inside one window) is in memory: a
    /// hint (see [`sys::mincore_is_truthful`]). `false` while the window is
    /// not mapped.
    pub(crate) fn is_resident(&self, range: Range<u64>) -> io::Result<bool> {
        let Some(mapped) = self.at(range.start) else {
            return Ok(false);
        };
        mapped
            .region
            .is_resident(mapped.local(range.start)..mapped.local(range.end))
    }

    /// Whether the object's file reaches past `range` of the stream: one
    /// `fstat`.
    pub(crate) fn file_covers(&self, range: &Range<u64>) -> bool {
        let size = self.object.file.metadata().map(|m| m.len());
        size.is_ok_and(|size| size >= self.object_offset(range.end))
    }

    /// Drops the page-table entries of `range` from the windows mapped now
    /// (see [`Region::release`]: not of a window with a live loan); a window
    /// not mapped has none. Returns whether every mapped window released
    /// its part.
    pub(crate) fn release(&self, range: Range<u64>) -> io::Result<bool> {
        let mut released = true;
        for piece in self.pieces(range) {
            if let Some(mapped) = self.at(piece.start) {
                let local = mapped.local(piece.start)..mapped.local(piece.end);
                released &= mapped.region.release(local)?;
            }
        }
        Ok(released)
    }

    /// Whether the windows mapped now of `range` may release their pages
    /// (see [`Region::may_release`]): no loan of them is alive.
    pub(crate) fn may_release(&self, range: Range<u64>) -> bool {
        self.pieces(range)
            .filter_map(|piece| self.at(piece.start))
            .all(|mapped| mapped.region.may_release())
    }

    /// Starts writing the dirty pages of `range` to the file, and with
    /// `wait` waits for that I/O (see [`sys::write_back`]). Blocking; needs
    /// no mapping.
    pub(crate) fn write_back(&self, range: Range<u64>, wait: bool) -> io::Result<()> {
        let len = range.end - range.start;
        sys::write_back(
            &self.object.file,
            self.object_offset(range.start),
            len,
            wait,
        )
    }

    /// Drops the clean pages of `range` from the page cache. Blocking.
    pub(crate) fn drop_cached(&self, range: Range<u64>) -> io::Result<()> {
        let len = range.end - range.start;
        sys::drop_cached(&self.object.file, self.object_offset(range.start), len)
    }

    /// Makes the bytes of `range` durable in the file: `msync(MS_SYNC)`
    /// through the windows mapped now, `fdatasync` of the file for the
    /// parts of windows let go of (their dirty pages stay in the page
    /// cache). Blocking.
    pub(crate) fn sync(&self, range: Range<u64>) -> io::Result<()> {
        let mut unmapped = false;
        for piece in self.pieces(range.clone()) {
            match self.at(piece.start) {
                Some(m) => m.region.sync(m.local(piece.start)..m.local(piece.end))?,
                None => unmapped = true,
            }
        }
        if unmapped {
            self.object.file.sync_data()?;
            if !self.file_covers(&range) {
                return Err(sys::truncated());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;
    const MIB: u64 = 1 << 20;

    #[test]
    fn windows_are_several_read_ahead_windows_and_at_least_the_minimum() {
        assert_eq!(
            window_size(32 * MIB, None),
            32 * MIB * MAP_WINDOW_READ_AHEADS
        );
        assert_eq!(window_size(MIB, None), MAP_WINDOW_MIN);
        assert_eq!(window_size(u64::MAX, None), 1 << 62);
    }

    /// The windows of a stream of `len` bytes, `size` each, over a file.
    fn windows(len: u64, size: u64) -> Windows {
        let object = Object {
            file: tempfile::tempfile().unwrap(),
            access: crate::Access::Read,
            capacity: len,
            backing: crate::object::Backing::Persisted,
            mincore_truthful: Default::default(),
        };
        Windows::new(Arc::new(object), Span { start: 0, len }, size)
    }

    #[test]
    fn the_last_window_ends_with_the_stream() {
        let windows = windows(10 * PAGE + 1, 4 * PAGE);
        assert_eq!(windows.window(0), 0..4 * PAGE);
        assert_eq!(windows.window(4 * PAGE - 1), 0..4 * PAGE);
        assert_eq!(windows.window(4 * PAGE), 4 * PAGE..8 * PAGE);
        assert_eq!(windows.window(10 * PAGE), 8 * PAGE..10 * PAGE + 1);
    }

    #[test]
    fn ranges_are_cut_at_window_boundaries() {
        let windows = windows(10 * PAGE, 4 * PAGE);
        let cut = |range| windows.pieces(range).collect::<Vec<_>>();
        assert_eq!(cut(1..3), std::iter::once(1..3).collect::<Vec<_>>());
        assert_eq!(
            cut(PAGE..9 * PAGE),
            [PAGE..4 * PAGE, 4 * PAGE..8 * PAGE, 8 * PAGE..9 * PAGE]
        );
        assert_eq!(cut(4 * PAGE..4 * PAGE), []);
    }

    #[test]
    fn nothing_is_mapped_until_asked_and_settling_keeps_the_cursor_s_window_and_the_next() {
        let windows = windows(10 * PAGE, 4 * PAGE);
        windows.object.file.set_len(10 * PAGE).unwrap();
        assert!(windows.at(0).is_none());
        for at in [0, 4 * PAGE, 8 * PAGE] {
            assert_eq!(windows.map_at(at + 1).unwrap().start, at);
        }
        assert_eq!(windows.at(5 * PAGE).unwrap().start, 4 * PAGE);
        windows.settle(4 * PAGE).unwrap();
        assert!(windows.at(0).is_none());
        assert!(windows.at(4 * PAGE).is_some() && windows.at(8 * PAGE).is_some());
        windows.settle(9 * PAGE).unwrap();
        assert!(windows.at(4 * PAGE).is_none() && windows.at(8 * PAGE).is_some());
    }

    #[test]
    fn an_asked_window_size_is_whole_pages() {
        assert_eq!(window_size(32 * MIB, Some(1)), PAGE);
        assert_eq!(window_size(32 * MIB, Some(PAGE + 1)), 2 * PAGE);
        assert_eq!(window_size(32 * MIB, Some(64 << 10)), 64 << 10);
    }
}
