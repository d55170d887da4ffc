//! [`Source`]: the file a [`Tail`](crate::Tail) currently reads, through
//! the same paging parts as a [`ViewStream`](crate::ViewStream): windows
//! mapped on the pager, a prefetcher, and the release of what was read.
//!
//! ```text
//!   file     |==============len==============|
//!   windows  |...w0...|...w1...|...w2...|...w3...|...  (to SPAN, far past
//!                 released ^ cursor                    any file's end)
//!   prefetch never goes past len; pages past it are never touched
//!   growth:     the prefetcher's end moves; the next window is mapped by
//!               the pager's job when the cursor gets there
//!   truncation: fresh windows (the old ones are poisoned), nothing mapped
//! ```
//!
//! So following a file never maps on the polling thread: not when the tail
//! starts, not when the file grows past a window, not after a truncation.
//! And what the tail has read leaves its mapping behind it, so a tail that
//! reads a large log from its start holds a window or two, not the log.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use crate::object::{Access, Backing, Object};
use crate::range::Span;
use crate::stream::prefetch::{Prefetcher, Window};
use crate::stream::release::Release;
use crate::stream::windows::{window_size, Windows};
use crate::sys::{self, file_id, FileId, Populate};

/// How far into the file a tail's windows reach: past the length of any
/// file (4 EiB), and within what `mmap` offsets can address. Only the
/// windows the cursor gets to are mapped.
const SPAN: u64 = 1 << 62;

/// The read-ahead window for tails: logs grow in small steps.
const WINDOW: Window = Window {
    initial: 256 << 10,
    max: 8 << 20,
};

/// The file being followed and how it is read.
#[derive(Debug)]
pub(crate) struct Source {
    object: Arc<Object>,
    id: FileId,
    reading: Reading,
    /// The file's length when last looked at.
    len: u64,
    liveness: Arc<()>,
}

/// The windows of the file, their prefetcher and the release behind the
/// cursor: made anew after a truncation, without mapping anything.
#[derive(Debug)]
struct Reading {
    windows: Arc<Windows>,
    prefetch: Prefetcher,
    release: Release,
}

impl Reading {
    fn new(object: &Arc<Object>, liveness: &Arc<()>) -> Self {
        let span = Span {
            start: 0,
            len: SPAN,
        };
        let size = window_size(WINDOW.max, None);
        let windows = Arc::new(Windows::new(Arc::clone(object), span, size));
        let prefetch = Prefetcher::new(Arc::clone(&windows), Arc::clone(liveness), WINDOW);
        Self {
            windows,
            prefetch,
            release: Release::new(false),
        }
    }
}

impl Source {
    /// Opens the regular file at `path` (`InvalidInput` for anything else,
    /// without waiting: see `sys::open_regular`). Maps nothing yet.
    pub(crate) fn open(path: &Path, liveness: Arc<()>) -> io::Result<Self> {
        let (file, metadata) = sys::open_regular(path, OpenOptions::new().read(true))?;
        let len = metadata.len().min(SPAN);
        let object = Arc::new(Object {
            file,
            access: Access::Read,
            capacity: len,
            backing: Backing::Persisted,
            mincore_truthful: Default::default(),
        });
        let mut reading = Reading::new(&object, &liveness);
        reading.prefetch.set_end(len);
        Ok(Self {
            object,
            id: file_id(&metadata),
            reading,
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

    /// Looks at the file's length again (one `fstat`). Returns the new
    /// length.
    pub(crate) fn refresh_len(&mut self) -> io::Result<u64> {
        let len = self.object.file.metadata()?.len().min(SPAN);
        self.reading.prefetch.set_end(len);
        self.len = len;
        Ok(len)
    }

    /// After a truncation: reads the file again from its start, through
    /// fresh windows (a truncation poisons the windows whose pages it took).
    pub(crate) fn reread(&mut self) -> io::Result<()> {
        self.reading = Reading::new(&self.object, &self.liveness);
        self.refresh_len()?;
        Ok(())
    }

    /// Copies bytes at `pos` (below the length) into `buf`, as many as are
    /// resident now, waiting for the pager if none are. Returns how many.
    /// `UnexpectedEof` if the file was cut short under the read.
    pub(crate) fn poll_copy(
        &mut self,
        cx: &mut Context<'_>,
        pos: u64,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let Reading {
            windows,
            prefetch,
            release,
        } = &mut self.reading;
        windows.settle(pos)?;
        release.behind(windows, pos, prefetch);
        let (mapped, available) = ready!(prefetch.poll_available(cx, pos, Populate::Read))?;
        let len = available.min(buf.len() as u64) as usize;
        // SAFETY: `buf` is valid for writes of `len <= buf.len()` bytes and
        // is not part of the mapping; the copy is guarded against a
        // truncation.
        unsafe {
            mapped
                .region
                .copy_out(mapped.local(pos), buf.as_mut_ptr(), len)?
        };
        Poll::Ready(Ok(len))
    }
}
