//! [`Chunks`]: a stream view as a `Stream` of zero-copy `Bytes`.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::stream::{FusedStream, Stream};

use crate::stream::{Resident, ViewStream};

/// The rest of a [`ViewStream`] as `Bytes` chunks that point into the mapping
/// (no copy) and keep it alive. Made by [`ViewStream::chunks`].
///
/// Each chunk is at most the requested size and covers only pages that the
/// background prefetcher made resident, so the consumer of a chunk does not
/// fault on the disk either. After an error the stream ends.
///
/// If the file is truncated while chunks are held, reading them never raises
/// a `SIGBUS` crash: the lost pages read as zeros, and the next poll yields
/// an `UnexpectedEof` error, so a consumer that polls on learns that the
/// content was cut (see [`ViewStream`'s notes on a truncated
/// file](ViewStream#a-truncated-file)).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use futures::TryStreamExt;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("video.bin");
/// std::fs::write(&path, vec![1u8; 10_000])?;
/// // SAFETY: this program is the only user of the file.
/// let map = unsafe { mapview::MappedFile::open(&path)? };
/// let mut chunks = map.stream(..)?.chunks(4096);
/// let mut total = 0;
/// while let Some(chunk) = chunks.try_next().await? {
///     total += chunk.len(); // e.g. hand `chunk` to a socket: no copy
/// }
/// assert_eq!(total, 10_000);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Chunks {
    stream: ViewStream,
    size: usize,
    done: bool,
}

impl Chunks {
    pub(crate) fn new(stream: ViewStream, size: usize) -> Self {
        Self {
            stream,
            size,
            done: false,
        }
    }

    /// Hands out the next chunk.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.size == 0 {
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "chunk size must be at least 1 byte",
            ))));
        }
        let Some(Resident { region, start, len }) =
            ready!(self.stream.poll_next_span(cx, self.size))?
        else {
            return Poll::Ready(None);
        };
        let chunk = region.bytes(start, len)?;
        self.stream.consume_bytes(len);
        Poll::Ready(Some(Ok(chunk)))
    }
}

impl Stream for Chunks {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let item = ready!(this.poll_chunk(cx));
        this.done = !matches!(item, Some(Ok(_)));
        Poll::Ready(item)
    }
}

/// Terminated after the last chunk or an error; every later poll yields
/// `None`, so `futures::select!` may poll it again.
impl FusedStream for Chunks {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
