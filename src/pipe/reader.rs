//! [`PipeReader`], the consuming end of a pipe.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

use crate::budget::Budget;

use super::link::{Link, Signal};
use super::ring::{Ring, Side, READER_ATTACHED, READER_CLOSED, WRITER_CLOSED};
use super::spin::Spin;

/// The reading end of a [`pipe`](crate::pipe), made by
/// [`pipe::open`](crate::pipe::open). `Send + Unpin`.
///
/// Implements [`AsyncRead`], which copies out of the ring, and
/// [`AsyncBufRead`], whose [`poll_fill_buf`](AsyncBufRead::poll_fill_buf)
/// hands out the ring's own bytes without copying (the longest contiguous
/// run; a wrapped ring takes two calls). Both return `Pending` while the ring
/// is empty and the writer is alive.
///
/// # End of stream and errors
///
/// - EOF (a read of 0 bytes) once every byte is read and the writer shut
///   down or was dropped.
/// - `BrokenPipe` once every byte is read and the writer's process died
///   without closing the pipe; noticed at once, not by polling.
/// - `InvalidData` if the writer corrupted the ring's header;
///   `UnexpectedEof` if the shared memory was truncated (or truncated and
///   grown back), whether under a read or before it. Both are for good:
///   every later call fails the same way.
///
/// # Zero-copy reads and a misbehaving writer
///
/// The slice from `poll_fill_buf` points into shared memory. The protocol
/// forbids the writer to touch those bytes until they are consumed; a writer
/// process that breaks the protocol can change them under the slice. A
/// truncation under the slice cannot kill the process: the mapping is
/// covered by the crate's `SIGBUS` handler while it is lent out, so a lost
/// page reads as zeros, and the next call fails with `UnexpectedEof`. Use
/// [`AsyncRead`] (whose copies are checked for truncation before a read
/// returns, so it never hands out such zeros) when the writer is not trusted
/// that far.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
///
/// let name = format!("mapview-doc-pipe-reader-{}", std::process::id());
/// let mut writer = mapview::pipe::create(&name, 4096)?;
/// let mut reader = mapview::pipe::open(&name)?;
/// let producer = tokio::spawn(async move { writer.write_all(b"zero-copy").await });
/// let bytes = reader.fill_buf().await?; // the ring's own bytes, no copy
/// assert_eq!(bytes, b"zero-copy");
/// reader.consume(9); // gives the bytes back to the writer
/// assert!(reader.fill_buf().await?.is_empty()); // the writer is gone: EOF
/// producer.await??;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PipeReader {
    ring: Ring,
    link: Link,
    /// The reader's own count of bytes consumed; the header's copy is only
    /// published, never read back.
    tail: u64,
    /// Length of the slice the last `poll_fill_buf` handed out: `consume`
    /// never moves past it.
    filled: usize,
    /// The copy `poll_fill_buf` hands out when the ring cannot be lent.
    spare: Vec<u8>,
    budget: Budget,
    spin: Spin,
}

impl PipeReader {
    /// Claims the reader's place in `ring` and connects to the writer.
    pub(super) fn new(ring: Ring) -> io::Result<Self> {
        if ring.set_state(READER_ATTACHED)? & READER_ATTACHED != 0 {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the pipe already has a reader (a pipe has exactly one)",
            ));
        }
        // Resumes where the header says (0 for a new pipe; the header was
        // validated on open).
        let mut reader = Self {
            tail: 0,
            ring,
            link: Link::Gone,
            filled: 0,
            spare: Vec::new(),
            budget: Budget::default(),
            spin: Spin::default(),
        };
        reader.tail = reader.ring.tail()?;
        // On an error the reader drops and marks itself closed, so the writer
        // gets BrokenPipe instead of waiting for a reader that never comes.
        reader.link = Link::connect(reader.ring.token(), reader.ring.owner())?;
        Ok(reader)
    }

    /// The ring's capacity in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let name = format!("mapview-doc-reader-capacity-{}", std::process::id());
    /// let writer = mapview::pipe::create(&name, 10_000)?; // not only powers of two
    /// let reader = mapview::pipe::open(&name)?;
    /// assert_eq!(reader.capacity(), 10_000);
    /// assert_eq!(reader.capacity(), writer.capacity());
    /// # Ok(())
    /// # }
    /// ```
    pub fn capacity(&self) -> usize {
        // The capacity was a usize when the pipe was created.
        self.ring.capacity() as usize
    }

    fn writer_closed(&self) -> io::Result<bool> {
        Ok(self.ring.state()? & WRITER_CLOSED != 0)
    }

    /// Ready with the number of readable bytes, 0 at the end of the stream.
    fn poll_available(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        self.ring.check()?;
        loop {
            let available = self.ring.readable(self.tail)?;
            if available > 0 {
                self.spin.moved();
                return Poll::Ready(Ok(available));
            }
            // The writer publishes `head` before the flag: after seeing the
            // flag, one more look finds every byte it wrote.
            if self.writer_closed()? {
                return Poll::Ready(self.ring.readable(self.tail));
            }
            // An empty ring may be one cut short and grown back, with the
            // counters zeroed: look for that before waiting.
            self.ring.check_end()?;
            ready!(self.spin.poll_spin(cx));
            self.ring.set_waiting(Side::Reader)?;
            if self.ring.readable(self.tail)? > 0 || self.writer_closed()? {
                self.ring.clear_waiting(Side::Reader)?;
                continue;
            }
            let signal = ready!(self.link.poll_signal(cx));
            // Waking up costs system calls anyway: look for truncation too.
            self.ring.check_end()?;
            if signal == Signal::Gone {
                self.ring.clear_waiting(Side::Reader)?;
                if self.ring.readable(self.tail)? > 0 || self.writer_closed()? {
                    continue;
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the pipe's writer went away without closing it (its process died?)",
                )));
            }
        }
    }

    /// Gives `n` consumed bytes back to the writer. An error damaged the
    /// ring: the next poll reports it.
    fn release(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.tail += n as u64;
        if self.ring.publish_tail(self.tail).is_ok()
            && self.ring.take_waiting(Side::Writer).unwrap_or(false)
        {
            self.link.notify();
        }
    }
}

impl AsyncRead for PipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let progress = ready!(this.budget.poll_proceed(cx));
        let available = ready!(this.poll_available(cx))?;
        progress.made_progress();
        let n = buf
            .remaining()
            .min(usize::try_from(available).unwrap_or(usize::MAX));
        // SAFETY: `unfilled_mut` hands out memory that may be uninitialised;
        // we only write to it (through the copy) and never read it.
        let dst = unsafe { buf.unfilled_mut() };
        // SAFETY: `dst` has room for `n <= remaining` bytes and is the
        // caller's memory, not the ring's; `n <= available <= capacity`.
        unsafe { this.ring.read_at(this.tail, dst.as_mut_ptr().cast(), n) }?;
        // SAFETY: the copy initialised the first `n` unfilled bytes.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        this.filled = 0;
        this.release(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for PipeReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        let progress = ready!(this.budget.poll_proceed(cx));
        let available = ready!(this.poll_available(cx))?;
        progress.made_progress();
        // `available <= capacity`, which is mapped and so fits in usize.
        let available = available as usize;
        // SAFETY: bytes `tail..tail + available` are below the writer's
        // published `head` and not yet released by this reader, so the
        // protocol keeps the writer off them while the slice (which borrows
        // `self`, so no `consume` can happen meanwhile) lives.
        if let Some(bytes) = unsafe { this.ring.lend(this.tail, available) }? {
            this.filled = bytes.len();
            return Poll::Ready(Ok(bytes));
        }
        // The mapping cannot be lent out safely: hand out a copy.
        this.spare.resize(available, 0);
        // SAFETY: `spare` holds `available <= capacity` bytes and is not the
        // ring.
        unsafe {
            this.ring
                .read_at(this.tail, this.spare.as_mut_ptr(), available)
        }?;
        this.filled = available;
        Poll::Ready(Ok(&this.spare))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        // Never past what was handed out, whatever the caller says.
        let n = amt.min(this.filled);
        this.filled -= n;
        this.release(n);
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        // Flag first, then the link closes with the fields: a writer woken by
        // the closed socket finds the flag.
        // A damaged ring may fail this; the closing link tells the writer.
        let state = self.ring.set_state(READER_CLOSED);
        if matches!(self.link, Link::Gone) && state.is_ok_and(|s| s & WRITER_CLOSED == 0) {
            self.ring.reap_on_drop();
        }
    }
}
