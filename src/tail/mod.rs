//! [`Tail`]: follows a growing file like `tail -F`, as an async reader whose
//! `lines()` never end.
//!
//! ```text
//!   poll_fill_buf
//!     bytes below the file's length?  ── yes ─> prefetched? copy into the
//!        │ no                                  buffer (guarded), hand it out
//!     look again (fstat; stat of the path)
//!        ├─ longer          -> read on (the pager maps what comes)
//!        ├─ shorter than us -> truncated: read again from the start
//!        ├─ path now names another file, and ours is drained -> switch to it
//!        └─ nothing new     -> Pending until inotify (or a 100 ms timer)
//! ```
//!
//! The tail reads its file through the same paging parts as a
//! [`ViewStream`](crate::ViewStream) (windows mapped on the pager, its
//! prefetcher, the release of what was read: see `source`), but hands out
//! copies only: the file belongs to another program that may truncate it at
//! any moment, and a truncation under a copy is caught (see
//! `sys::guarded_copy`) and treated like any other truncation.

mod instances;
mod options;
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
use crate::sys::file_id;
pub use options::TailOptions;
use source::Source;
use watcher::Watcher;

/// How many bytes one fill of the tail's buffer copies at most.
const BUFFER: usize = 64 << 10;

/// Follows the file at a path as it grows, is truncated, or is replaced, like
/// `tail -F`: an [`AsyncRead`] + [`AsyncBufRead`] that waits for more data at
/// the end of the file instead of returning EOF.
///
/// ```text
///   poll_fill_buf
///     bytes below the file's length?  ── yes ─> prefetched? copy into the
///        │ no                                  buffer (guarded), hand it out
///     look again (fstat; stat of the path)
///        ├─ longer          -> read on (the pager maps what comes)
///        ├─ shorter than us -> truncated: read again from the start
///        ├─ path now names another file, and ours is drained -> switch to it
///        └─ nothing new     -> Pending until inotify (or a 100 ms timer)
/// ```
///
/// The file is read through mappings made and prefetched off the polling
/// thread, as a stream's are, and what was read leaves the mapping, so
/// memory stays bounded however large the file. Only copies are handed
/// out: the file belongs to another program that may cut it short at any
/// moment, and a truncation under a copy is caught and treated like any
/// other truncation, never a `SIGBUS`.
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
///   start. If the path is gone, or names something other than a regular
///   file (a FIFO, say), it waits for a regular file to appear there.
/// - A path with no file yet: [`Tail::follow`] fails with `NotFound`;
///   [`Tail::options`] with [`wait_for_file`](TailOptions::wait_for_file)
///   waits for the file and reads it from its start.
/// - Lines that are not UTF-8: tokio's
///   [`lines`](tokio::io::AsyncBufReadExt::lines) fails on the first one with
///   `InvalidData`; [`next_line_lossy`](Tail::next_line_lossy) replaces the
///   bad bytes instead, as logs need.
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
    /// The file being read; `None` while waiting for one to appear.
    source: Option<Source>,
    pos: u64,
    buf: Box<[u8]>,
    /// The part of `buf` not yet handed out.
    filled: std::ops::Range<usize>,
    /// The start of a line that [`next_line_lossy`](Tail::next_line_lossy)
    /// has taken but not yet returned.
    line: Vec<u8>,
    watcher: Watcher,
    liveness: Arc<()>,
    budget: Budget,
}

impl Tail {
    /// Starts following the file at `path` from `start` (`SeekFrom::End(0)`
    /// for new lines only, `SeekFrom::Start(0)` for the whole file;
    /// `Current` counts from the start). Call it inside a tokio runtime.
    /// To wait for a file that is not there yet, see
    /// [`TailOptions::wait_for_file`].
    ///
    /// # Errors
    ///
    /// `NotFound` if there is no file at `path`; `InvalidInput` if it is not
    /// a regular file (a directory or a FIFO, say: the open never waits for a
    /// FIFO's writer) or `start` is outside it; an
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
        Self::options().follow(path, start)
    }

    /// A builder for following a file with other settings.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("later.log");
    /// let tail = mapview::Tail::options()
    ///     .wait_for_file(true)
    ///     .follow(&path, std::io::SeekFrom::End(0))?;
    /// # drop(tail);
    /// # Ok(())
    /// # }
    /// ```
    pub fn options() -> TailOptions {
        TailOptions::default()
    }

    /// Follows `path` from `start`; with `wait_for_file`, a missing file is
    /// waited for instead of being `NotFound`.
    fn new(path: &Path, start: SeekFrom, wait_for_file: bool) -> io::Result<Tail> {
        let path = path.to_path_buf();
        Handle::try_current()
            .map_err(|_| io::Error::other("Tail::follow must be called inside a tokio runtime"))?;
        let liveness = Arc::new(());
        let (source, pos) = match Source::open(&path, Arc::clone(&liveness)) {
            Ok(source) => {
                let pos = start_position(&source, start, &path)?;
                (Some(source), pos)
            }
            Err(e) if wait_for_file && e.kind() == io::ErrorKind::NotFound => (None, 0),
            Err(e) => return Err(e),
        };
        let watcher = Watcher::new(&path)?;
        Ok(Tail {
            path,
            source,
            pos,
            buf: vec![0; BUFFER].into_boxed_slice(),
            filled: 0..0,
            line: Vec::new(),
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

    /// The read position in the file being read now (0 while waiting for a
    /// file to appear).
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

    /// The next line, without its `\n` (or `\r\n`), with any bytes that are
    /// not UTF-8 replaced by U+FFFD (as [`String::from_utf8_lossy`] does).
    /// Waits until a whole line is there: a tail never ends.
    ///
    /// Use it for logs that may hold other bytes: tokio's
    /// [`lines`](tokio::io::AsyncBufReadExt::lines) fails with
    /// `InvalidData` on such a line (which ends the usual
    /// `while let Some(line) = lines.next_line().await?` loop). For the raw
    /// bytes of each line, use
    /// [`split(b'\n')`](tokio::io::AsyncBufReadExt::split).
    ///
    /// Cancel safe: a line cut short by dropping the future is kept, and the
    /// next call returns it whole. (Reading the tail another way meanwhile
    /// reads on after the part already taken.)
    ///
    /// # Errors
    ///
    /// An error of reading the file, as for
    /// [`poll_fill_buf`](AsyncBufRead::poll_fill_buf).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("app.log");
    /// std::fs::write(&path, b"caf\xe9 ok\r\nnext\n")?;
    /// let mut tail = mapview::Tail::follow(&path, std::io::SeekFrom::Start(0))?;
    /// assert_eq!(tail.next_line_lossy().await?, "caf\u{fffd} ok");
    /// assert_eq!(tail.next_line_lossy().await?, "next");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next_line_lossy(&mut self) -> io::Result<String> {
        std::future::poll_fn(|cx| self.poll_next_line_lossy(cx)).await
    }

    fn poll_next_line_lossy(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<String>> {
        loop {
            ready!(self.poll_buffered(cx))?;
            let available = &self.buf[self.filled.clone()];
            let (taken, complete) = match available.iter().position(|&b| b == b'\n') {
                Some(newline) => (newline + 1, true),
                None => (available.len(), false),
            };
            self.line.extend_from_slice(&available[..taken]);
            self.filled.start += taken;
            if complete {
                let line = std::mem::take(&mut self.line);
                return Poll::Ready(Ok(lossy_line(line)));
            }
        }
    }

    /// Makes sure the buffer holds bytes not yet handed out, waiting for
    /// them if need be (within the task's time slice).
    fn poll_buffered(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.filled.is_empty() {
            let progress = ready!(self.budget.poll_proceed(cx));
            ready!(self.poll_fill(cx))?;
            progress.made_progress();
        }
        Poll::Ready(Ok(()))
    }

    /// Fills the buffer with the next bytes, waiting for them if need be.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some(source) = self.source.as_mut().filter(|s| self.pos < s.len()) {
                match ready!(source.poll_copy(cx, self.pos, &mut self.buf)) {
                    Ok(len) => {
                        self.filled = 0..len;
                        self.pos += len as u64;
                        return Poll::Ready(Ok(()));
                    }
                    // The file was cut under the read: read it again.
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

    /// The file was truncated: read it again from the start.
    fn restart(&mut self) -> io::Result<()> {
        if let Some(source) = &mut self.source {
            source.reread()?;
        }
        self.pos = 0;
        Ok(())
    }

    /// At the end of what is known: has the file grown, shrunk or been
    /// replaced (or, while there is none, appeared)? Returns whether there
    /// may be more to read now.
    fn look_again(&mut self) -> io::Result<bool> {
        if let Some(source) = &mut self.source {
            let before = source.len();
            let len = source.refresh_len()?;
            if len < self.pos {
                self.restart()?;
                return Ok(true);
            }
            if len > before {
                return Ok(true);
            }
        }
        // Only a regular file takes over: something else at the path (a
        // FIFO, say) is waited out like a missing file.
        let replaced = match std::fs::metadata(&self.path) {
            Ok(metadata) => {
                metadata.is_file()
                    && Some(file_id(&metadata)) != self.source.as_ref().map(Source::id)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if !replaced {
            return Ok(false);
        }
        match Source::open(&self.path, Arc::clone(&self.liveness)) {
            Ok(source) => {
                self.source = Some(source);
                self.pos = 0;
                self.watcher.watch_file(&self.path);
                Ok(true)
            }
            // Gone again, or not a regular file after all: wait for the next
            // change.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// Where reading starts in `source` for `start`; `InvalidInput` outside it.
fn start_position(source: &Source, start: SeekFrom, path: &Path) -> io::Result<u64> {
    match start {
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
    })
}

/// `line` (ending in `\n`) without its line ending, as text.
fn lossy_line(mut line: Vec<u8>) -> String {
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    match String::from_utf8(line) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

impl AsyncBufRead for Tail {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        ready!(this.poll_buffered(cx))?;
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
