//! [`Source`]: the file a [`Tail`](crate::Tail) currently reads, mapped
//! ahead of its end so that growth needs no new mapping most of the time.
//!
//! ```text
//!   file     |==========len==========|
//!   mapping  |==========len==========|......headroom......|
//!   prefetch never goes past len; pages past it are never touched
//! ```

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::object::{Access, Backing, Object};
use crate::range::Span;
use crate::region::Region;
use crate::stream::prefetch::{Prefetcher, Window};
use crate::stream::windows::Windows;
use crate::sys::{self, file_id, FileId, Populate};

/// How far past the end of the file the mapping reaches (rounded up to this).
const HEADROOM: u64 = 64 << 20;

/// The read-ahead window for tails: logs grow in small steps.
const WINDOW: Window = Window {
    initial: 256 << 10,
    max: 8 << 20,
};

/// The file being followed, its mapping and its prefetcher.
#[derive(Debug)]
pub(crate) struct Source {
    object: Arc<Object>,
    id: FileId,
    region: Arc<Region>,
    prefetch: Prefetcher,
    /// The file's length when last looked at.
    len: u64,
    liveness: Arc<()>,
}

impl Source {
    /// Opens and maps the regular file at `path` (`InvalidInput` for anything
    /// else, without waiting: see `sys::open_regular`).
    pub(crate) fn open(path: &Path, liveness: Arc<()>) -> io::Result<Self> {
        let (file, metadata) = sys::open_regular(path, OpenOptions::new().read(true))?;
        let len = metadata.len();
        let object = Arc::new(Object {
            file,
            access: Access::Read,
            capacity: len,
            backing: Backing::Persisted,
            mincore_truthful: Default::default(),
        });
        let (region, prefetch) = map(&object, len, &liveness)?;
        Ok(Self {
            object,
            id: file_id(&metadata),
            region,
            prefetch,
            len,
            liveness,
        })
    }

    pub(crate) fn id(&self) -> FileId {
        self.id
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Looks at the file's length again. Returns the new length.
    pub(crate) fn refresh_len(&mut self) -> io::Result<u64> {
        let len = self.object.file.metadata()?.len();
        if len > self.region.len() {
            self.remap(len)?;
        } else {
            self.prefetch.set_end(len);
        }
        self.len = len;
        Ok(len)
    }

    /// Maps the file afresh, for a length of `len`: after it outgrew the
    /// mapping, or after a truncation poisoned the old one.
    pub(crate) fn remap(&mut self, len: u64) -> io::Result<()> {
        let (region, prefetch) = map(&self.object, len, &self.liveness)?;
        self.region = region;
        self.prefetch = prefetch;
        self.len = len;
        Ok(())
    }

    /// How many bytes at `pos` (below the length) are resident now.
    pub(crate) fn poll_available(
        &mut self,
        cx: &mut std::task::Context<'_>,
        pos: u64,
    ) -> std::task::Poll<io::Result<u64>> {
        self.prefetch
            .poll_available(cx, pos, Populate::Read)
            .map_ok(|(_, available)| available)
    }

    /// Copies bytes at `pos` into `buf` (guarded against truncation).
    pub(crate) fn copy_out(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        // SAFETY: `buf` is valid for writes of its length and is not part of
        // the mapping.
        unsafe { self.region.copy_out(pos, buf.as_mut_ptr(), buf.len()) }
    }
}

/// Maps `object` from its start to past `len`, with a prefetcher that stops
/// at `len`.
fn map(
    object: &Arc<Object>,
    len: u64,
    liveness: &Arc<()>,
) -> io::Result<(Arc<Region>, Prefetcher)> {
    let mapped = (len + 1).next_multiple_of(HEADROOM);
    let region = Arc::new(Region::new(
        Arc::clone(object),
        Span {
            start: 0,
            len: mapped,
        },
    )?);
    let windows = Arc::new(Windows::whole(Arc::clone(&region)));
    let mut prefetch = Prefetcher::new(windows, Arc::clone(liveness), WINDOW);
    prefetch.set_end(len);
    Ok((region, prefetch))
}
