//! Stream access views: [`ViewStream`], a sequential, async view of part of a
//! mapping object.
//!
//! A stream moves a cursor over its range, which it maps a window at a time
//! ([`windows`]), each a [`Region`]. Its background prefetcher
//! ([`prefetch`]) maps the window ahead of the cursor and makes its pages
//! resident on the pager's threads, and the poll functions touch only bytes
//! it has vouched for, so a poll never waits on the disk, nor on an `mmap`:
//!
//! ```text
//!   poll_read / poll_fill_buf / Chunks::poll_next
//!        │ bytes resident at the cursor?
//!        ├── yes: copy out (guarded) / lend a slice / hand out a Bytes
//!        │        (at most to the end of the cursor's mapped window)
//!        └── no : park the waker, return Pending (a "stall")
//!                      ▲
//!   pager thread:   mmap(the window, once), MADV_POPULATE_READ(next
//!                   read-ahead window) ── wake ──┘
//! ```

mod chunks;
mod job;
mod options;
pub(crate) mod prefetch;
pub(crate) mod release;
pub(crate) mod windows;
mod writeback;

use std::fmt;
use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};
use tokio::runtime::Handle;

use crate::budget::Budget;
use crate::object::{Access, Object};
use crate::range::Span;
use crate::region::{Loan, Region};
use crate::sys::Populate;
use windows::{window_size, Windows};

pub use chunks::Chunks;
pub use options::StreamOptions;
use prefetch::{Prefetcher, Window};
use release::Release;
use writeback::Writeback;

/// A sequential, async view of part of a [`MappedFile`](crate::MappedFile),
/// made by [`MappedFile::stream`](crate::MappedFile::stream).
///
/// Implements [`AsyncRead`], [`AsyncBufRead`] (whose `fill_buf` lends the
/// mapping's own bytes, no copy) and [`AsyncSeek`]; [`chunks`](Self::chunks)
/// turns it into a stream of zero-copy [`Bytes`](bytes::Bytes). A background
/// task on the [`Pager`](crate::Pager) maps the range and makes the pages
/// ahead of the cursor resident, so polls never block the async worker on
/// the disk, nor on the process's memory-map lock: when the cursor catches
/// up with the prefetcher, a poll returns `Pending` and is woken once the next
/// window is in memory.
///
/// A stream maps its range a window at a time (64 MiB, or four times its
/// largest read-ahead window if that is more), and only on the pager: making
/// a stream maps nothing, its first poll returns `Pending` until its first
/// window is mapped (and fails with the error of that `mmap`, if it fails),
/// and a window the cursor has left is unmapped once no [`Bytes`](bytes::Bytes)
/// of it is alive. So a stream over any range, larger than the address
/// space even, maps at most about two windows. A read or write that would
/// cross the end of a window returns the bytes up to it (fewer than asked,
/// as `read` and `write` may).
///
/// ```text
///   poll_read / poll_fill_buf / Chunks::poll_next
///        │ bytes resident at the cursor?
///        ├── yes: copy out (guarded) / lend a slice / hand out a Bytes
///        └── no : park the waker, return Pending (a "stall")
///                      ▲
///   pager thread:   mmap(window, once), MADV_POPULATE_READ(next) ── wake ──┘
///   behind the cursor: pages released from the mapping, 8 MiB at a time;
///   windows left behind unmapped
/// ```
///
/// The [crate docs](crate#how-a-stream-never-stalls-its-executor) explain
/// the read-ahead window, the process-wide budget and write-back.
///
/// Writes into a sparse file on a full file system fail with `StorageFull`.
/// An error that may have lost written bytes (a truncation, a failed
/// write-back or flush) is reported again by every later write, flush and
/// shutdown.
///
/// # A truncated file
///
/// When the file is truncated under a stream, the stream reports
/// `UnexpectedEof`; it never lets the process be killed by `SIGBUS`:
///
/// - Reads and writes copy through a guard: the copy that meets a lost page
///   fails.
/// - Memory the stream lends out, the slice of `fill_buf` and the
///   [`Bytes`](bytes::Bytes) of [`chunks`](Self::chunks), is covered by the
///   library's `SIGBUS` handler for as long as it lives. A page of it that
///   the truncation took away reads as zeros when touched, and from then on
///   every poll of the stream (a read, `fill_buf`, the next chunk, a write)
///   fails with `UnexpectedEof`. Those zeros are not data: a consumer that
///   passes each chunk on before it polls for the next (an HTTP body, say)
///   learns from that error that the content was cut, as it would from a
///   failed read. Chunks still held after their stream ended, with no poll
///   left to come, read the zeros silently. A system call handed such memory
///   (a socket write of a chunk) fails with `EFAULT` ("Bad address")
///   instead. When more than 16,384 mappings (a stream's windows, say)
///   are lent out at once, further ones hand out copies, which a later
///   truncation does not touch.
///
/// A cut inside a page leaves the start of that page in the file, and its
/// rest reads as zeros without any fault. The stream checks the file's
/// length each time it makes pages resident, so a cut made before then is
/// `UnexpectedEof` like any other; one made later, inside a page already
/// resident, reads as zeros.
///
/// After such an error the stream stays failed, even if the file grows back.
/// Changes of the file's bytes that are not a truncation are visible through
/// lent memory: that is the caller's part of the `unsafe` constructor's
/// contract (see the crate's [safety section](crate#safety)).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tokio::io::AsyncReadExt;
///
/// let map = mapview::MappedFile::anonymous(10_000)?;
/// map.view_mut(5000..5005)?.copy_from_slice(b"hello");
/// let mut stream = map.stream(5000..)?;
/// let mut hello = [0u8; 5];
/// stream.read_exact(&mut hello).await?;
/// assert_eq!(&hello, b"hello");
/// assert_eq!(stream.position(), 5);
/// # Ok(())
/// # }
/// ```
pub struct ViewStream {
    windows: Arc<Windows>,
    pos: u64,
    prefetch: Prefetcher,
    writeback: Writeback,
    release: Release,
    budget: Budget,
    shut_down: bool,
    /// What `fill_buf` lends when the region cannot lend its own memory.
    copied: Vec<u8>,
    /// The loan behind the slice `fill_buf` returned last: it keeps the
    /// window mapped, and its pages unreleased, until `consume`.
    lent: Option<Loan>,
    /// Held by every background job; the watch sees it go.
    liveness: Arc<()>,
}

/// Counters of a stream's background work, from [`ViewStream::stats`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tokio::io::AsyncWriteExt;
///
/// let dir = tempfile::tempdir()?;
/// // SAFETY: this program is the only user of the new file.
/// let map = unsafe { mapview::MappedFile::create(dir.path().join("out.bin"), 1 << 20)? };
/// let mut stream = map.stream(..)?;
/// stream.write_all(&[1; 4096]).await?;
/// assert_eq!(stream.stats().dirty_bytes, 4096);
/// stream.flush().await?;
/// let stats = stream.stats();
/// assert_eq!((stats.dirty_bytes, stats.flushed_bytes), (0, 4096));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Bytes the stream found or made resident ahead of its cursor.
    pub prefetched_bytes: u64,
    /// Bytes written back to the file behind the cursor (and by flushes).
    pub flushed_bytes: u64,
    /// Bytes written and not yet known to be on the disk; stays under
    /// [`StreamOptions::dirty_limit`] for file-backed streams.
    pub dirty_bytes: u64,
    /// Polls that returned `Pending` because the pages ahead were not yet
    /// resident.
    pub stalls: u64,
    /// Times the reader found pages prefetched for it evicted by memory
    /// pressure before it got to them, and had them prefetched again (off
    /// the worker) rather than fault them in from the disk on its thread.
    /// Counted where `mincore` tells the truth (see the
    /// [crate docs](crate#how-a-stream-never-stalls-its-executor)).
    pub evictions: u64,
}

/// Tells whether the background work of a stream has ended, from
/// [`ViewStream::background`]. It ends soon after the stream is dropped (a
/// job in flight finishes its window first).
///
/// A hook for the crate's own tests, outside the documented API: it may
/// change in any release.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct BackgroundWatch(Weak<()>);

impl BackgroundWatch {
    /// Whether no background job of the stream is running or queued.
    pub fn is_finished(&self) -> bool {
        self.0.strong_count() == 0
    }
}

impl ViewStream {
    /// A stream over `span` of `object`, which maps nothing here: its
    /// background jobs map it, a window at a time, on the pager.
    pub(crate) fn new(
        object: Arc<Object>,
        span: Span,
        options: &StreamOptions,
    ) -> io::Result<Self> {
        in_runtime()?;
        let size = window_size(options.max_read_ahead, options.map_window);
        Ok(Self::with(Windows::new(object, span, size), options))
    }

    /// A stream over `region`, mapped already, which may be a slice of a
    /// shared mapping.
    #[cfg(feature = "http")]
    pub(crate) fn over(region: Region, options: &StreamOptions) -> io::Result<Self> {
        in_runtime()?;
        Ok(Self::with(Windows::whole(Arc::new(region)), options))
    }

    fn with(windows: Windows, options: &StreamOptions) -> Self {
        let windows = Arc::new(windows);
        let liveness = Arc::new(());
        let window = Window {
            initial: options.read_ahead,
            max: options.max_read_ahead,
        };
        let prefetch = Prefetcher::new(Arc::clone(&windows), Arc::clone(&liveness), window);
        let writeback = Writeback::new(
            Arc::clone(&windows),
            Arc::clone(&liveness),
            options.dirty_limit,
        );
        Self {
            prefetch,
            writeback,
            release: Release::new(options.drop_behind),
            windows,
            pos: 0,
            budget: Budget::default(),
            shut_down: false,
            copied: Vec::new(),
            lent: None,
            liveness,
        }
    }

    /// The cursor, relative to the start of the stream's range.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use std::io::SeekFrom;
    /// use tokio::io::{AsyncReadExt, AsyncSeekExt};
    ///
    /// let map = mapview::MappedFile::anonymous(4096)?;
    /// let mut stream = map.stream(1000..2000)?;
    /// assert_eq!(stream.position(), 0); // relative to the start of the range
    /// stream.read_exact(&mut [0; 10]).await?;
    /// assert_eq!(stream.position(), 10);
    /// stream.seek(SeekFrom::End(-1)).await?;
    /// assert_eq!(stream.position(), 999);
    /// # Ok(())
    /// # }
    /// ```
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The length of the stream's range in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use tokio::io::AsyncReadExt;
    ///
    /// let map = mapview::MappedFile::anonymous(4096)?;
    /// let mut stream = map.stream(1000..)?;
    /// assert_eq!(stream.len(), 3096);
    /// let mut bytes = Vec::new();
    /// stream.read_to_end(&mut bytes).await?; // up to the end of the range
    /// assert_eq!(bytes.len() as u64, stream.len());
    /// # Ok(())
    /// # }
    /// ```
    #[allow(clippy::len_without_is_empty)] // `is_empty` would read as "nothing left"
    pub fn len(&self) -> u64 {
        self.windows.len()
    }

    /// Counters of the stream's background work so far.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let map = mapview::MappedFile::anonymous(1 << 20)?;
    /// let mut stream = map.stream(..)?;
    /// tokio::io::copy(&mut stream, &mut tokio::io::sink()).await?;
    /// let stats = stream.stats();
    /// assert_eq!(stats.prefetched_bytes, 1 << 20); // every byte, ahead of the reads
    /// assert_eq!(stats.flushed_bytes, 0); // nothing was written
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> StreamStats {
        StreamStats {
            prefetched_bytes: self.prefetch.prefetched_bytes,
            flushed_bytes: self.writeback.flushed_bytes,
            dirty_bytes: self.writeback.dirty_bytes(),
            stalls: self.prefetch.stalls,
            evictions: self.prefetch.evictions,
        }
    }

    /// A handle that tells when this stream's background work has ended: a
    /// hook for the crate's own tests, outside the documented API.
    #[doc(hidden)]
    pub fn background(&self) -> BackgroundWatch {
        BackgroundWatch(Arc::downgrade(&self.liveness))
    }

    /// Makes the next `len` bytes from the cursor (fewer at the end of the
    /// stream) resident now, on the calling thread, mapping them first if
    /// the stream has not yet, so that reading them needs no trip to the
    /// background prefetcher.
    ///
    /// **This blocks on the disk**: call it where blocking is fine, never on
    /// an async worker. It is for code that is on the blocking pool anyway,
    /// such as a file server that opens the file and maps the range inside
    /// `spawn_blocking`: prefetching the first bytes there saves the first
    /// read a thread hop (a whole short range request then goes out without
    /// one).
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` if the file was truncated below those bytes, or the
    /// error of the `mmap` that maps them or of the `madvise` that faults
    /// them in.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let map = mapview::MappedFile::anonymous(1 << 20)?;
    /// let stream = tokio::task::spawn_blocking(move || {
    ///     let mut stream = map.stream(4096..)?;
    ///     stream.prefetch_blocking(64 << 10)?;
    ///     Ok::<_, std::io::Error>(stream)
    /// })
    /// .await??;
    /// assert_eq!(stream.stats().prefetched_bytes, 64 << 10);
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefetch_blocking(&mut self, len: u64) -> io::Result<()> {
        let end = self.pos.saturating_add(len).min(self.len());
        self.prefetch.populate_now(self.pos, end)
    }

    /// The rest of the stream as zero-copy [`Bytes`](bytes::Bytes) of at
    /// most `size` bytes each, pointing into the mapping and keeping it
    /// alive. A `size` of 0 yields one `InvalidInput` error.
    ///
    /// A chunk's pages lost to a truncation of the file read as zeros, and
    /// the next chunk is an `UnexpectedEof` error (see [a truncated
    /// file](Self#a-truncated-file)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use futures::TryStreamExt;
    ///
    /// let map = mapview::MappedFile::anonymous(10_000)?;
    /// let chunks: Vec<bytes::Bytes> = map.stream(..)?.chunks(4096).try_collect().await?;
    /// assert_eq!(chunks.iter().map(|c| c.len()).collect::<Vec<_>>(), [4096, 4096, 1808]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn chunks(self, size: usize) -> Chunks {
        Chunks::new(self, size)
    }

    /// Waits until bytes at the cursor are resident, and returns the
    /// mapped window they lie in, where they start in it and how many (at
    /// most `max`) there are. `None` at the end of the stream.
    fn poll_next_span(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Option<Resident>>> {
        self.windows.settle(self.pos)?;
        self.release
            .behind(&self.windows, self.pos, &mut self.prefetch);
        if self.pos >= self.len() {
            return Poll::Ready(Ok(None));
        }
        let progress = ready!(self.budget.poll_proceed(cx));
        let (mapped, available) =
            ready!(self.prefetch.poll_available(cx, self.pos, Populate::Read))?;
        progress.made_progress();
        let len = available.min(max as u64) as usize;
        let start = mapped.local(self.pos);
        Poll::Ready(Ok(Some(Resident {
            region: mapped.region,
            start,
            len,
        })))
    }

    /// Moves the cursor forward by `len` bytes (not past the end).
    fn consume_bytes(&mut self, len: usize) {
        self.pos = self
            .pos
            .saturating_add(len as u64)
            .min(self.len().max(self.pos));
    }
}

/// Resident bytes at a stream's cursor: `len` of them from `start` of the
/// mapped window `region`.
struct Resident {
    region: Arc<Region>,
    start: u64,
    len: usize,
}

impl AsyncRead for ViewStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let Some(Resident { region, start, len }) =
            ready!(this.poll_next_span(cx, buf.remaining()))?
        else {
            return Poll::Ready(Ok(()));
        };
        // SAFETY: we only write initialised bytes into the unfilled part and
        // mark exactly those as initialised below.
        let unfilled = unsafe { buf.unfilled_mut() };
        // SAFETY: `unfilled` holds at least `len` bytes (len <= remaining) and
        // is the caller's buffer, disjoint from the mapping.
        unsafe { region.copy_out(start, unfilled.as_mut_ptr().cast(), len)? };
        // SAFETY: `copy_out` initialised the first `len` unfilled bytes.
        unsafe { buf.assume_init(len) };
        buf.advance(len);
        this.consume_bytes(len);
        Poll::Ready(Ok(()))
    }
}

impl ViewStream {
    /// `PermissionDenied` on a read-only map, `BrokenPipe` after shutdown.
    fn check_writable(&self) -> io::Result<()> {
        if self.windows.object().access == Access::Read {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the stream's mapping object was opened with Access::Read",
            ));
        }
        if self.shut_down {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write to a stream after shutdown",
            ));
        }
        Ok(())
    }

    /// Writes what fits of `buf` at the cursor, once there is room and the
    /// pages are writable.
    fn poll_write_at_cursor(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() || self.pos >= self.len() {
            return Poll::Ready(Ok(0));
        }
        self.windows.settle(self.pos)?;
        let progress = ready!(self.budget.poll_proceed(cx));
        let room = ready!(self.writeback.poll_room(cx, self.pos))?;
        if let Some(released) = self.writeback.take_released() {
            self.prefetch.forget(released);
        }
        let (mapped, available) =
            ready!(self.prefetch.poll_available(cx, self.pos, Populate::Write))?;
        progress.made_progress();
        let len = (buf.len() as u64).min(available).min(room) as usize;
        mapped.region.copy_in(mapped.local(self.pos), &buf[..len])?;
        self.writeback.record(self.pos..self.pos + len as u64);
        self.pos += len as u64;
        Poll::Ready(Ok(len))
    }
}

impl AsyncWrite for ViewStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_writable()?;
        let result = ready!(this.poll_write_at_cursor(cx, buf));
        Poll::Ready(this.writeback.note(result))
    }

    /// Completes when every byte written so far is durable in the file
    /// (`msync(MS_SYNC)` on the pager); for shared or anonymous
    /// memory and copy-on-write maps, at once.
    ///
    /// Fails with `UnexpectedEof` if the file was truncated below bytes
    /// written since the last flush. Once a write, a write-back or a flush
    /// has failed in a way that may have lost written bytes, every later
    /// write, flush and shutdown fails with that error's kind.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.writeback.poll_flush(cx, this.pos)
    }

    /// Flushes, then refuses further writes.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.writeback.poll_flush(cx, this.pos))?;
        this.shut_down = true;
        Poll::Ready(Ok(()))
    }
}

/// How many bytes `fill_buf` copies at most when the region cannot lend its
/// memory (too many regions lent out at once).
const FILL_COPY: usize = 64 << 10;

impl AsyncBufRead for ViewStream {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        let Some(Resident { region, start, len }) = ready!(this.poll_next_span(cx, usize::MAX))?
        else {
            return Poll::Ready(Ok(&[]));
        };
        this.lent = None;
        if let Some(loan) = region.lend(start, len)? {
            let loan: &Loan = this.lent.insert(loan);
            return Poll::Ready(Ok(loan.as_ref()));
        }
        let len = len.min(FILL_COPY);
        this.copied.resize(len, 0);
        // SAFETY: `copied` holds `len` bytes and is not the mapping.
        unsafe { region.copy_out(start, this.copied.as_mut_ptr(), len)? };
        Poll::Ready(Ok(&this.copied))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.lent = None; // the lent slice is gone: the window may go too
        this.consume_bytes(amt);
    }
}

impl AsyncSeek for ViewStream {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let target = match position {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => this.len().checked_add_signed(delta),
            SeekFrom::Current(delta) => this.pos.checked_add_signed(delta),
        };
        this.pos = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("seek to {position:?} is before the start of the stream"),
            )
        })?;
        this.release.seek(this.pos);
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

/// Not needed for the background work (the pager runs it), but a stream
/// polled outside a runtime could not yield to its neighbours.
fn in_runtime() -> io::Result<()> {
    Handle::try_current().map_err(|_| {
        io::Error::other("MappedFile::stream must be called inside a tokio runtime")
    })?;
    Ok(())
}

impl fmt::Debug for ViewStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewStream")
            .field("position", &self.pos)
            .field("len", &self.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
