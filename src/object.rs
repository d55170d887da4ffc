//! The mapping object: an open file, named shared-memory object or anonymous
//! memory object, with its access mode and capacity. Views and streams each
//! map their own part of it and keep it alive through an `Arc`.

use std::fmt;
use std::fs::File;
use std::io;
use std::sync::OnceLock;

use memmap2::{Mmap, MmapMut, MmapOptions, MmapRaw};

use crate::range::Span;
use crate::shm;
use crate::sys;

/// How a mapping object may be accessed.
///
/// # Examples
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use mapview::{Access, MappedFile};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("data.txt");
/// std::fs::write(&path, "data")?;
/// assert_eq!(Access::default(), Access::Read);
/// for access in [Access::Read, Access::ReadWrite, Access::CopyOnWrite] {
///     // SAFETY: this program is the only user of the file.
///     let map = unsafe { MappedFile::options().access(access).open(&path)? };
///     assert_eq!(map.view_mut(..).is_ok(), access != Access::Read);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Access {
    /// Read-only: views can't be written, streams can't write.
    #[default]
    Read,
    /// Read and write; writes reach the file (or shared memory) and every
    /// other view of it, in this process and others.
    ReadWrite,
    /// Read and write, but writes stay private to the view that made them
    /// and never reach the file.
    CopyOnWrite,
}

/// What backs a mapping object.
#[derive(Debug)]
pub(crate) enum Backing {
    /// A file on disk.
    Persisted,
    /// Named shared memory; this process holds it under `name`.
    Shared { name: String },
    /// Unnamed memory (a memfd on Linux).
    Anonymous,
}

/// The shared state behind a `MappedFile` and every view and stream of it.
pub(crate) struct Object {
    pub(crate) file: File,
    pub(crate) access: Access,
    pub(crate) capacity: u64,
    pub(crate) backing: Backing,
    /// Whether `mincore` tells the truth about the file's pages: asked
    /// once, by the first stream that wants to know.
    pub(crate) mincore_truthful: OnceLock<bool>,
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("access", &self.access)
            .field("capacity", &self.capacity)
            .field("backing", &self.backing)
            .finish_non_exhaustive()
    }
}

impl Object {
    /// Whether `mincore` tells the truth about the object's pages for this
    /// process (see [`sys::mincore_is_truthful`]).
    pub(crate) fn mincore_is_truthful(&self) -> bool {
        *self
            .mincore_truthful
            .get_or_init(|| sys::mincore_is_truthful(&self.file))
    }

    fn options(span: Span) -> io::Result<MmapOptions> {
        let mut options = MmapOptions::new();
        options.offset(span.start).len(span.len_usize()?);
        Ok(options)
    }

    fn read_only_error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the mapping object was opened with Access::Read",
        )
    }

    /// Maps `span` read-only. The mapping may later be made writable if the
    /// object's access allows it.
    pub(crate) fn map_read(&self, span: Span) -> io::Result<Mmap> {
        let options = Self::options(span)?;
        // SAFETY: the caller of the (unsafe) constructor of this object vouched
        // that changes behind the mapping are tolerated (see the crate docs).
        unsafe {
            match self.access {
                Access::CopyOnWrite => options.map_copy_read_only(&self.file),
                Access::Read | Access::ReadWrite => options.map(&self.file),
            }
        }
    }

    /// Maps `span` writable; `PermissionDenied` on a read-only object.
    pub(crate) fn map_write(&self, span: Span) -> io::Result<MmapMut> {
        let options = Self::options(span)?;
        // SAFETY: as in `map_read`.
        unsafe {
            match self.access {
                Access::Read => Err(self.read_only_error()),
                Access::ReadWrite => options.map_mut(&self.file),
                Access::CopyOnWrite => options.map_copy(&self.file),
            }
        }
    }

    /// Maps `span` as raw memory, writable unless the object is read-only,
    /// for the stream views that copy in and out of it.
    pub(crate) fn map_raw(&self, span: Span) -> io::Result<MmapRaw> {
        match self.access {
            Access::Read => Self::options(span)?.map_raw_read_only(&self.file),
            Access::ReadWrite | Access::CopyOnWrite => self.map_write(span).map(MmapRaw::from),
        }
    }

    /// `PermissionDenied` unless views of this object may be written.
    pub(crate) fn check_writable(&self) -> io::Result<()> {
        match self.access {
            Access::Read => Err(self.read_only_error()),
            Access::ReadWrite | Access::CopyOnWrite => Ok(()),
        }
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        if let Backing::Shared { name } = &self.backing {
            // Nothing to report an error to; the worst case is a leftover
            // object that the next creator of the name reaps.
            let _ = shm::release(name, &self.file);
        }
    }
}
