//! [`PipeWriter`], the producing end of a pipe.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;

use crate::budget::Budget;

use super::link::Link;
use super::ring::{Ring, Side, READER_ATTACHED, READER_CLOSED, WRITER_CLOSED};
use super::spin::Spin;

/// The writing end of a [`pipe`](crate::pipe), made by
/// [`pipe::create`](crate::pipe::create). `Send + Unpin`.
///
/// Implements [`AsyncWrite`]: a write copies as much as fits into the ring
/// and returns `Pending` when the ring is full, until the reader makes room.
/// [`poll_flush`](AsyncWrite::poll_flush) has nothing to do (the bytes are
/// visible to the reader as soon as a write returns) but to report a
/// truncated or corrupt ring.
///
/// # Shutdown and drop
///
/// [`poll_shutdown`](AsyncWrite::poll_shutdown) marks the end of the stream,
/// which the reader sees as EOF once it has read every byte. When
/// `shutdown().await` returns `Ok`, nothing written is lost if the writer's
/// process exits:
///
/// - With a reader attached, it completes at once: the reader holds the
///   shared memory, and every byte in it, until it has read them.
/// - With none yet, it waits until a reader has come and read every byte
///   (`pipe::open_wait` lets a consumer start late). Bound the wait with
///   [`tokio::time::timeout`] if none may come.
/// - It fails with `BrokenPipe` if the reader went away with bytes unread.
///
/// Dropping the writer marks the end of the stream too, without waiting: a
/// reader that has opened the pipe still gets every byte, but if none has,
/// the shared memory (and what it holds) goes with the writer's process.
///
/// # Errors
///
/// Writes fail with `BrokenPipe` once the reader was dropped or its process
/// died (a dead reader is noticed when the ring is full), and after
/// `shutdown`; with `InvalidData` if the reader corrupted the ring's header;
/// with `UnexpectedEof` if the shared memory was truncated under it. The
/// last two are for good: every later call fails the same way.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tokio::io::AsyncWriteExt;
///
/// let name = format!("mapview-doc-pipe-writer-{}", std::process::id());
/// let mut writer = mapview::pipe::create(&name, 4096)?;
/// let reader = mapview::pipe::open(&name)?;
/// writer.write_all(b"hello").await?; // fits in the ring: no waiting
/// drop(reader); // the reader, or its process, goes away
/// let gone = writer.write_all(&[0; 8192]).await.unwrap_err();
/// assert_eq!(gone.kind(), std::io::ErrorKind::BrokenPipe);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PipeWriter {
    ring: Ring,
    link: Link,
    /// The writer's own count of bytes written; the header's copy is only
    /// published, never read back.
    head: u64,
    closed: bool,
    budget: Budget,
    spin: Spin,
}

fn broken_pipe(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, message.to_owned())
}

impl PipeWriter {
    pub(super) fn new(ring: Ring) -> io::Result<Self> {
        let link = Link::listen(ring.token(), ring.owner())?;
        Ok(Self {
            ring,
            link,
            head: 0,
            closed: false,
            budget: Budget::default(),
            spin: Spin::default(),
        })
    }

    /// The ring's capacity in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use futures::FutureExt;
    /// use tokio::io::AsyncWriteExt;
    ///
    /// let name = format!("mapview-doc-writer-capacity-{}", std::process::id());
    /// let mut writer = mapview::pipe::create(&name, 64 * 1024)?;
    /// assert_eq!(writer.capacity(), 64 * 1024);
    /// // That much fits before a reader takes any; one more byte waits.
    /// writer.write_all(&[0; 64 * 1024]).await?;
    /// assert!(writer.write(b"!").now_or_never().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn capacity(&self) -> usize {
        // The capacity was a usize when the pipe was created.
        self.ring.capacity() as usize
    }

    /// Whether the reader was dropped or its process died.
    fn reader_gone(&self) -> io::Result<bool> {
        Ok(self.ring.state()? & READER_CLOSED != 0 || matches!(self.link, Link::Gone))
    }

    /// Errors that end writing for good.
    fn check_usable(&self) -> io::Result<()> {
        self.ring.check()?;
        if self.closed {
            return Err(broken_pipe("write after shutdown of the pipe"));
        }
        if self.reader_gone()? {
            return Err(broken_pipe("the pipe's reader is gone"));
        }
        Ok(())
    }

    /// Wakes the reader if it sleeps. Call after publishing `head` or state.
    fn wake_reader(&mut self) -> io::Result<()> {
        if self.ring.take_waiting(Side::Reader)? {
            self.link.notify();
        }
        Ok(())
    }

    /// Ready with the number of free bytes once at least `want` are free;
    /// `BrokenPipe` if the reader goes away before.
    fn poll_free(&mut self, cx: &mut Context<'_>, want: u64) -> Poll<io::Result<u64>> {
        loop {
            self.ring.check()?;
            let free = self.ring.writable(self.head)?;
            if free >= want {
                self.spin.moved();
                return Poll::Ready(Ok(free));
            }
            if self.reader_gone()? {
                return Poll::Ready(Err(broken_pipe(
                    "the pipe's reader went away without reading every byte",
                )));
            }
            // A full ring may be one cut short and grown back, with the
            // counters zeroed: look for that before waiting.
            self.ring.check_end()?;
            ready!(self.spin.poll_spin(cx));
            self.ring.set_waiting(Side::Writer)?;
            if self.ring.writable(self.head)? >= want || self.reader_gone()? {
                self.ring.clear_waiting(Side::Writer)?;
                continue;
            }
            // Woken or gone: the loop looks again either way.
            ready!(self.link.poll_signal(cx));
            // Waking up costs system calls anyway: look for truncation too.
            self.ring.check_end()?;
        }
    }

    /// Marks the end of the stream (once).
    fn close(&mut self) -> io::Result<()> {
        if !self.closed {
            self.closed = true;
            self.ring.set_state(WRITER_CLOSED)?;
            self.wake_reader()?;
        }
        Ok(())
    }
}

impl AsyncWrite for PipeWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_usable()?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let progress = ready!(this.budget.poll_proceed(cx));
        let free = ready!(this.poll_free(cx, 1))?;
        progress.made_progress();
        let n = buf.len().min(usize::try_from(free).unwrap_or(usize::MAX));
        this.ring.write_at(this.head, &buf[..n])?;
        this.head += n as u64;
        this.ring.publish_head(this.head)?;
        this.wake_reader()?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.ring.check())
    }

    /// Marks the end of the stream, and without a reader attached, waits
    /// until one has read every byte: see [`PipeWriter`].
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.close()?;
        // Damage the ring took (a truncation, a corrupt header) is reported
        // here too, before the reader is trusted with the bytes.
        this.ring.check()?;
        this.ring.check_end()?;
        if this.ring.state()? & READER_ATTACHED != 0 && !this.reader_gone()? {
            return Poll::Ready(Ok(()));
        }
        let capacity = this.ring.capacity();
        ready!(this.poll_free(cx, capacity))?;
        Poll::Ready(Ok(()))
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        // Flag first, then the link closes with the fields: a reader woken
        // by the closed socket finds the flag and reports EOF, not a crash.
        // A damaged ring may fail these; the closing link tells the reader.
        let _ = self.close();
        if matches!(self.link, Link::Gone)
            && self.ring.state().is_ok_and(|s| s & READER_CLOSED == 0)
        {
            self.ring.reap_on_drop();
        }
    }
}
