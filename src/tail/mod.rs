//! [`Tail`]: follows a growing file like `tail -F`, as an async reader whose
//! `lines()` never end.
//!
//! ```text
//!   poll_fill_buf
//!     bytes below the file's length?  ── yes ─> prefetched? copy into the
//!        │ no                                  buffer (guarded), hand it out
//!     look again (fstat; stat of the path)
//!        ├─ longer          -> read on (remap if past the mapping)
//!        ├─ shorter than us -> truncated: read again from the start
//!        ├─ path now names another file, and ours is drained -> switch to it
//!        └─ nothing new     -> Pending until inotify (or a 100 ms timer)
//! ```
//!
//! The tail reads its file through a mapping with the same prefetcher as a
//! [`ViewStream`](crate::ViewStream), but hands out copies only: the file
//! belongs to another program that may truncate it at any moment, and a
//! truncation under a copy is caught (see `sys::guarded_copy`) and treated
//! like any other truncation.

mod source;
mod watcher;

use std::fmt;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};
use tokio::runtime::Handle;

use crate::budget::Budget;
use source::{file_id, Source};
use watcher::Watcher;

/// How many bytes one fill of the tail's buffer copies at most.
const BUFFER: usize = 64 << 10;

/// Follows the file at a path as it grows, is truncated, or is replaced, like
/// `tail -F`: an [`AsyncRead`] + [`AsyncBufRead`] that waits for more data at
/// the end of the file instead of returning EOF.
///
/// - Growth is noticed through inotify, with a re-check every 100 ms as a
///   fallback for filesystems without events.
/// - Truncation (copytruncate rotation): when the file becomes shorter than
///   the read position, the tail reads it again from its start, as GNU
///   `tail -F` does, so bytes written after the truncation are never lost.
///   If the file was cut to a length other than zero, those first bytes are
///   read again; a truncation followed by writes past the old position
///   before the tail looks again cannot be told from plain growth (the same
///   holds for `tail -F`).
/// - Rename or delete rotation: when the path names a new file, the tail
///   first reads what is left of the old one, then the new one from its
///   start. If the path is gone, it waits for a file to appear there.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tokio::io::AsyncBufReadExt;
///
/// let tail = mapview::Tail::follow("/var/log/app.log", std::io::SeekFrom::End(0))?;
/// let mut lines = tail.lines();
/// while let Some(line) = lines.next_line().await? {
///     println!("{line}");
/// }
/// # Ok(())
/// # }
/// ```
pub struct Tail {
    path: PathBuf,
    source: Source,
    pos: u64,
    buf: Box<[u8]>,
    /// The part of `buf` not yet handed out.
    filled: std::ops::Range<usize>,
    watcher: Watcher,
    liveness: Arc<()>,
    budget: Budget,
}

impl Tail {
    /// Starts following the file at `path` from `start` (`SeekFrom::End(0)`
    /// for new lines only, `SeekFrom::Start(0)` for the whole file;
    /// `Current` counts from the start). Call it inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// `NotFound` if there is no file at `path`; `InvalidInput` if it is not
    /// a regular file (a directory, say) or `start` is outside it; an
    /// error of kind `Other` outside a tokio runtime, or in one without IO
    /// and timers enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use std::io::{SeekFrom, Write};
    /// use tokio::io::AsyncBufReadExt;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("app.log");
    /// std::fs::write(&path, "old line\n")?;
    /// let mut lines = mapview::Tail::follow(&path, SeekFrom::End(0))?.lines();
    /// let mut log = std::fs::OpenOptions::new().append(true).open(&path)?;
    /// writeln!(log, "new line")?; // usually another process
    /// assert_eq!(lines.next_line().await?.as_deref(), Some("new line"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn follow(path: impl AsRef<Path>, start: SeekFrom) -> io::Result<Tail> {
        let path = path.as_ref().to_path_buf();
        Handle::try_current()
            .map_err(|_| io::Error::other("Tail::follow must be called inside a tokio runtime"))?;
        let liveness = Arc::new(());
        let source = Source::open(&path, Arc::clone(&liveness))?;
        let pos = match start {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => source.len().checked_add_signed(delta),
            SeekFrom::Current(delta) => 0u64.checked_add_signed(delta),
        }
        .filter(|&pos| pos <= source.len())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{start:?} is outside {} ({} bytes)",
                    path.display(),
                    source.len()
                ),
            )
        })?;
        let watcher = Watcher::new(&path)?;
        Ok(Tail {
            path,
            source,
            pos,
            buf: vec![0; BUFFER].into_boxed_slice(),
            filled: 0..0,
            watcher,
            liveness,
            budget: Budget::default(),
        })
    }

    /// The path being followed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("app.log");
    /// std::fs::write(&path, "a line\n")?;
    /// let tail = mapview::Tail::follow(&path, std::io::SeekFrom::Start(0))?;
    /// assert_eq!(tail.path(), path);
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The read position in the file being read now.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use tokio::io::AsyncReadExt;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("app.log");
    /// std::fs::write(&path, "0123456789")?;
    /// let mut tail = mapview::Tail::follow(&path, std::io::SeekFrom::Start(4))?;
    /// assert_eq!(tail.position(), 4);
    /// let mut three = [0; 3];
    /// tail.read_exact(&mut three).await?;
    /// assert_eq!((&three, tail.position()), (b"456", 7));
    /// # Ok(())
    /// # }
    /// ```
    pub fn position(&self) -> u64 {
        self.pos - self.filled.len() as u64
    }

    /// Fills the buffer with the next bytes, waiting for them if need be.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.pos < self.source.len() {
                match ready!(self.source.poll_available(cx, self.pos)) {
                    Ok(available) => match self.copy(available) {
                        Ok(()) => return Poll::Ready(Ok(())),
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => self.restart()?,
                        Err(e) => return Poll::Ready(Err(e)),
                    },
                    // The file ended before the prefetcher got there: cut.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => self.restart()?,
                    Err(e) => return Poll::Ready(Err(e)),
                }
                continue;
            }
            if self.look_again()? {
                continue;
            }
            ready!(self.watcher.poll_change(cx))?;
        }
    }

    /// Copies up to `available` bytes at the read position into the buffer.
    fn copy(&mut self, available: u64) -> io::Result<()> {
        let len = available.min(self.buf.len() as u64) as usize;
        self.source.copy_out(self.pos, &mut self.buf[..len])?;
        self.filled = 0..len;
        self.pos += len as u64;
        Ok(())
    }

    /// The file was truncated under a copy: map it afresh and read it again
    /// from the start.
    fn restart(&mut self) -> io::Result<()> {
        let len = self.source.refresh_len()?;
        self.source.remap(len)?;
        self.pos = 0;
        Ok(())
    }

    /// At the end of what is known: has the file grown, shrunk or been
    /// replaced? Returns whether there may be more to read now.
    fn look_again(&mut self) -> io::Result<bool> {
        let before = self.source.len();
        let len = self.source.refresh_len()?;
        if len < self.pos {
            self.restart()?;
            return Ok(true);
        }
        if len > before {
            return Ok(true);
        }
        let replaced = match std::fs::metadata(&self.path) {
            Ok(metadata) => file_id(&metadata) != self.source.id(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if !replaced {
            return Ok(false);
        }
        match Source::open(&self.path, Arc::clone(&self.liveness)) {
            Ok(source) => {
                self.source = source;
                self.pos = 0;
                self.watcher.watch_file(&self.path);
                Ok(true)
            }
            // Gone again, or not a regular file yet: wait for the next change.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl AsyncBufRead for Tail {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.filled.is_empty() {
            let progress = ready!(this.budget.poll_proceed(cx));
            ready!(this.poll_fill(cx))?;
            progress.made_progress();
        }
        Poll::Ready(Ok(&this.buf[this.filled.clone()]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.filled.start = (this.filled.start + amt).min(this.filled.end);
    }
}

impl AsyncRead for Tail {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let available = ready!(self.as_mut().poll_fill_buf(cx))?;
        let len = available.len().min(buf.remaining());
        buf.put_slice(&available[..len]);
        self.consume(len);
        Poll::Ready(Ok(()))
    }
}

impl fmt::Debug for Tail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tail")
            .field("path", &self.path)
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}
