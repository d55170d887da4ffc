//! Random-access views: [`View`] and [`ViewMut`], synchronous slices of a
//! mapping object at any offset.
//!
//! Each view is its own mapping of its part of the object, so changing one
//! view's protection never affects another. The page-alignment slack in front
//! of an unaligned offset is hidden: the slice starts exactly at
//! [`View::offset`].

use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut, RangeBounds};
use std::sync::Arc;

use bytemuck::Pod;
use memmap2::{Mmap, MmapMut};

use crate::object::{Access, Object};
use crate::range::{self, Span};

/// A read-only, random-access view of part of a [`MappedFile`](crate::MappedFile).
///
/// Derefs to `&[u8]`. Views of the same object, in this process or another,
/// see each other's writes at once (except under [`Access::CopyOnWrite`],
/// where each writable view keeps its writes to itself).
///
/// # Examples
///
/// ```
/// let map = mapview::MappedFile::anonymous(4096)?;
/// map.view_mut(100..104)?.copy_from_slice(b"mmap");
/// let view = map.view(98..106)?;
/// assert_eq!(&view[2..6], b"mmap");
/// assert_eq!(view.offset(), 98);
/// # std::io::Result::Ok(())
/// ```
pub struct View {
    map: Mmap,
    offset: u64,
    object: Arc<Object>,
}

/// A writable, random-access view of part of a [`MappedFile`](crate::MappedFile).
///
/// Derefs to `&mut [u8]`. Writes are visible at once to every other view of
/// the object, and reach the file when the kernel writes the pages back, or
/// when [`flush`](ViewMut::flush) returns.
///
/// # Examples
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("records.bin");
/// // SAFETY: this program is the only user of the new file.
/// let map = unsafe { mapview::MappedFile::create(&path, 4096)? };
/// let mut record = map.view_mut(16..32)?;
/// record.fill(b'-'); // a `&mut [u8]` of exactly bytes 16..32
/// record.write_value(0, &7u32)?;
/// record.flush()?;
/// let file = std::fs::read(&path)?;
/// assert_eq!(file[16..20], 7u32.to_ne_bytes());
/// assert_eq!(&file[20..32], b"------------");
/// # Ok(())
/// # }
/// ```
pub struct ViewMut {
    map: MmapMut,
    offset: u64,
    object: Arc<Object>,
}

/// The read accessors that [`View`] and [`ViewMut`] share (both have `map`,
/// a byte slice, and `offset`).
macro_rules! read_accessors {
    () => {
        /// Where the view starts in the mapping object.
        ///
        /// # Examples
        ///
        /// ```
        /// # fn main() -> std::io::Result<()> {
        /// let map = mapview::MappedFile::anonymous(8192)?;
        /// assert_eq!(map.view(100..200)?.offset(), 100);
        /// assert_eq!(map.view_mut(4096..)?.offset(), 4096);
        /// # Ok(())
        /// # }
        /// ```
        pub fn offset(&self) -> u64 {
            self.offset
        }

        /// Copies `buf.len()` bytes from `offset` (relative to the view's start)
        /// into `buf`.
        ///
        /// # Errors
        ///
        /// `UnexpectedEof` if the bytes reach past the end of the view.
        ///
        /// # Examples
        ///
        /// ```
        /// # fn main() -> std::io::Result<()> {
        /// let map = mapview::MappedFile::anonymous(4096)?;
        /// map.view_mut(..)?.write_at(10, b"mapped")?;
        /// let view = map.view(8..)?;
        /// let mut word = [0u8; 6];
        /// view.read_at(2, &mut word)?; // 8 + 2 = byte 10 of the object
        /// assert_eq!(&word, b"mapped");
        /// let past = view.read_at(4085, &mut word);
        /// assert_eq!(past.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        /// # Ok(())
        /// # }
        /// ```
        pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            read_at(&self.map, offset, buf)
        }

        /// Reads a plain-old-data value from `offset` (relative to the view's
        /// start); the offset need not be aligned for `T`.
        ///
        /// # Errors
        ///
        /// `UnexpectedEof` if the value reaches past the end of the view.
        ///
        /// # Examples
        ///
        /// ```
        /// let map = mapview::MappedFile::anonymous(64)?;
        /// map.view_mut(..)?.write_value(3, &0xfeed_u32)?;
        /// assert_eq!(map.view(..)?.read_value::<u32>(3)?, 0xfeed);
        /// # std::io::Result::Ok(())
        /// ```
        pub fn read_value<T: Pod>(&self, offset: u64) -> io::Result<T> {
            read_value(&self.map, offset)
        }
    };
}

impl View {
    pub(crate) fn new(object: Arc<Object>, span: Span) -> io::Result<Self> {
        let map = object.map_read(span)?;
        Ok(Self {
            map,
            offset: span.start,
            object,
        })
    }

    read_accessors!();

    /// Makes the view writable, like `VirtualProtect` to read-write.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if the object was opened with [`Access::Read`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let map = mapview::MappedFile::anonymous(4096)?;
    /// let mut page = map.view(..)?.make_mut()?;
    /// page[0] = 42;
    /// assert_eq!(map.view(..1)?[0], 42);
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("notes.txt");
    /// std::fs::write(&path, "read only")?;
    /// // SAFETY: this program is the only user of the file.
    /// let read_only = unsafe { mapview::MappedFile::open(&path)? }.view(..)?;
    /// let denied = read_only.make_mut().unwrap_err();
    /// assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
    /// # Ok(())
    /// # }
    /// ```
    pub fn make_mut(self) -> io::Result<ViewMut> {
        self.object.check_writable()?;
        Ok(ViewMut {
            map: self.map.make_mut()?,
            offset: self.offset,
            object: self.object,
        })
    }
}

impl ViewMut {
    pub(crate) fn new(object: Arc<Object>, span: Span) -> io::Result<Self> {
        let map = object.map_write(span)?;
        Ok(Self {
            map,
            offset: span.start,
            object,
        })
    }

    read_accessors!();

    /// Copies `buf` into the view at `offset` (relative to the view's start).
    ///
    /// # Errors
    ///
    /// `WriteZero` if the bytes reach past the end of the view; nothing is
    /// written then.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let map = mapview::MappedFile::anonymous(4096)?;
    /// let mut end = map.view_mut(4000..)?;
    /// end.write_at(0, b"end")?; // relative to the view's start
    /// assert_eq!(&map.view(4000..4003)?[..], b"end");
    /// let past = end.write_at(94, b"end");
    /// assert_eq!(past.unwrap_err().kind(), std::io::ErrorKind::WriteZero);
    /// assert_eq!(end[94..], [0, 0]); // nothing was written
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let len = self.map.len();
        let Some(dst) = sub_range(len, offset, buf.len()).map(|r| &mut self.map[r]) else {
            return Err(past_end(io::ErrorKind::WriteZero, offset, buf.len(), len));
        };
        dst.copy_from_slice(buf);
        Ok(())
    }

    /// Writes a plain-old-data value at `offset` (relative to the view's
    /// start); the offset need not be aligned for `T`.
    ///
    /// # Errors
    ///
    /// `WriteZero` if the value reaches past the end of the view.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let map = mapview::MappedFile::anonymous(64)?;
    /// let mut view = map.view_mut(..)?;
    /// view.write_value(1, &0x0102_0304_u32)?; // unaligned is fine
    /// view.write_value(8, &[1.5_f64, 2.5])?;
    /// assert_eq!(view[1..5], 0x0102_0304_u32.to_ne_bytes());
    /// assert_eq!(view.read_value::<[f64; 2]>(8)?, [1.5, 2.5]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_value<T: Pod>(&mut self, offset: u64, value: &T) -> io::Result<()> {
        self.write_at(offset, bytemuck::bytes_of(value))
    }

    /// Writes the view's dirty pages to the file and returns when they are
    /// durable (`msync(MS_SYNC)`). Blocks: from async code, call it through
    /// `tokio::task::spawn_blocking`. A no-op for copy-on-write views.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("journal.txt");
    /// // SAFETY: this program is the only user of the new file.
    /// let map = unsafe { mapview::MappedFile::create(&path, 4096)? };
    /// let mut entry = map.view_mut(..7)?;
    /// entry.copy_from_slice(b"commit\n");
    /// // In async code, wait for the disk on the blocking pool.
    /// tokio::task::spawn_blocking(move || entry.flush()).await??;
    /// assert_eq!(&std::fs::read(&path)?[..7], b"commit\n");
    /// # Ok(())
    /// # }
    /// ```
    pub fn flush(&self) -> io::Result<()> {
        if self.object.access == Access::CopyOnWrite {
            return Ok(());
        }
        self.map.flush()
    }

    /// Like [`flush`](ViewMut::flush), for the bytes of `range` only.
    /// `range` is in the mapping object's coordinates (like the range the view
    /// was made with), and unbounded ends stop at the view's ends.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `range` is reversed or reaches outside the view (an
    /// empty range inside it flushes nothing).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("big.bin");
    /// // SAFETY: this program is the only user of the new file.
    /// let map = unsafe { mapview::MappedFile::create(&path, 1 << 20)? };
    /// let mut view = map.view_mut(4096..)?;
    /// view[..5].copy_from_slice(b"hello");
    /// view.flush_range(4096..4101)?; // the object's offsets, not the view's
    /// assert_eq!(&std::fs::read(&path)?[4096..4101], b"hello");
    /// let outside = view.flush_range(0..5);
    /// assert_eq!(outside.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok(())
    /// # }
    /// ```
    pub fn flush_range(&self, range: impl RangeBounds<u64>) -> io::Result<()> {
        let end = self.offset + self.map.len() as u64;
        let span = range::resolve(range, self.offset, end)?;
        if self.object.access == Access::CopyOnWrite || span.len == 0 {
            return Ok(());
        }
        let start = (span.start - self.offset) as usize;
        self.map.flush_range(start, span.len_usize()?)
    }

    /// Makes the view read-only, like `VirtualProtect` to read-only.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let map = mapview::MappedFile::anonymous(4096)?;
    /// let mut page = map.view_mut(..)?;
    /// page[..4].copy_from_slice(b"done");
    /// let frozen = page.make_read_only()?; // a `View` now: no more writes
    /// assert_eq!(&frozen[..4], b"done");
    /// # Ok(())
    /// # }
    /// ```
    pub fn make_read_only(self) -> io::Result<View> {
        Ok(View {
            map: self.map.make_read_only()?,
            offset: self.offset,
            object: self.object,
        })
    }
}

/// The index range `offset..offset + len` inside a slice of `size` bytes, if
/// it fits.
fn sub_range(size: usize, offset: u64, len: usize) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(len)?;
    (end <= size).then_some(start..end)
}

fn past_end(kind: io::ErrorKind, offset: u64, len: usize, size: usize) -> io::Error {
    io::Error::new(
        kind,
        format!("{len} bytes at offset {offset} reach past the end of a {size}-byte view"),
    )
}

fn read_at(bytes: &[u8], offset: u64, buf: &mut [u8]) -> io::Result<()> {
    let Some(src) = sub_range(bytes.len(), offset, buf.len()).map(|r| &bytes[r]) else {
        return Err(past_end(
            io::ErrorKind::UnexpectedEof,
            offset,
            buf.len(),
            bytes.len(),
        ));
    };
    buf.copy_from_slice(src);
    Ok(())
}

fn read_value<T: Pod>(bytes: &[u8], offset: u64) -> io::Result<T> {
    let mut value = T::zeroed();
    read_at(bytes, offset, bytemuck::bytes_of_mut(&mut value))?;
    Ok(value)
}

impl Deref for View {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Deref for ViewMut {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl DerefMut for ViewMut {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }
}

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsRef<[u8]> for ViewMut {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for ViewMut {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

fn debug_view(f: &mut fmt::Formatter<'_>, name: &str, offset: u64, len: usize) -> fmt::Result {
    f.debug_struct(name)
        .field("offset", &offset)
        .field("len", &len)
        .finish_non_exhaustive()
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_view(f, "View", self.offset, self.map.len())
    }
}

impl fmt::Debug for ViewMut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_view(f, "ViewMut", self.offset, self.map.len())
    }
}
