//! [`ResponseBody`]: the body of every response, a queue of segments.
//!
//! ```text
//!   ResponseBody ─ [ Bytes | Chunks of a ViewStream (n bytes) | a fallback's body ] ...
//!                    sent     zero-copy Bytes into the mapping   boxed
//! ```
//!
//! A whole file or one range is one `Chunks` segment; a multipart body
//! alternates `Bytes` (part headers) and `Chunks`. A segment that fails, or
//! a stream that ends short of its length, ends the body with an error:
//! the server then cuts the connection, so a client never takes a short
//! body for the whole.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::Stream;
use http_body::{Body, Frame, SizeHint};

use super::exclusive::Exclusive;
use crate::Chunks;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxBody = Pin<Box<dyn Body<Data = Bytes, Error = io::Error> + Send>>;

/// The body of the responses of [`ServeDir`](super::ServeDir) and
/// [`ServeFile`](super::ServeFile): an `http_body::Body` of zero-copy
/// `Bytes` that point into a mapping of the file.
///
/// Its error is the stream's: `UnexpectedEof` when the file was truncated
/// while it was sent. Servers (hyper) then cut the connection.
///
/// # Examples
///
/// ```
/// use http_body::Body;
/// use mapview::http::ResponseBody;
///
/// let body = ResponseBody::empty();
/// assert!(body.is_end_stream());
/// assert_eq!(body.size_hint().exact(), Some(0));
/// ```
pub struct ResponseBody {
    segments: VecDeque<Segment>,
}

pub(crate) enum Segment {
    Bytes(Bytes),
    /// Chunks that must add up to `remaining` bytes (boxed: a stream is
    /// large).
    Chunks {
        chunks: Box<Chunks>,
        remaining: u64,
    },
    /// Another body, with its size hint as of its last poll (its own
    /// `size_hint` needs `&self`, which `Exclusive` does not give).
    Boxed {
        body: Exclusive<BoxBody>,
        hint: SizeHint,
    },
}

impl ResponseBody {
    /// A body with no bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_body::Body;
    ///
    /// assert!(mapview::http::ResponseBody::empty().is_end_stream());
    /// ```
    pub fn empty() -> Self {
        Self {
            segments: VecDeque::new(),
        }
    }

    pub(crate) fn from_segments(segments: impl IntoIterator<Item = Segment>) -> Self {
        Self {
            segments: segments.into_iter().collect(),
        }
    }

    pub(crate) fn bytes(bytes: impl Into<Bytes>) -> Self {
        Self::from_segments([Segment::Bytes(bytes.into())])
    }

    /// Wraps another body (a fallback service's).
    pub(crate) fn boxed<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let hint = body.size_hint();
        let body = Exclusive::new(Box::pin(MapErr { inner: body }) as BoxBody);
        Self::from_segments([Segment::Boxed { body, hint }])
    }

    /// Drops what is left, so that the body ends after an error.
    fn fail(&mut self, error: io::Error) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        self.segments.clear();
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        loop {
            let Some(segment) = this.segments.front_mut() else {
                return Poll::Ready(None);
            };
            match segment {
                Segment::Bytes(bytes) => {
                    let bytes = std::mem::take(bytes);
                    this.segments.pop_front();
                    if !bytes.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                }
                Segment::Chunks { chunks, remaining } => {
                    match ready!(Pin::new(&mut **chunks).poll_next(cx)) {
                        Some(Ok(bytes)) => {
                            *remaining = remaining.saturating_sub(bytes.len() as u64);
                            return Poll::Ready(Some(Ok(Frame::data(bytes))));
                        }
                        Some(Err(error)) => return this.fail(error),
                        None if *remaining > 0 => {
                            let error = io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the file ended before the body",
                            );
                            return this.fail(error);
                        }
                        None => {
                            this.segments.pop_front();
                        }
                    }
                }
                Segment::Boxed { body, hint } => {
                    match ready!(body.get_mut().as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => {
                            *hint = body.get_mut().size_hint();
                            return Poll::Ready(Some(Ok(frame)));
                        }
                        Some(Err(error)) => return this.fail(error),
                        None => {
                            this.segments.pop_front();
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.segments.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        let (mut lower, mut upper) = (0u64, Some(0u64));
        for segment in &self.segments {
            let (low, up) = match segment {
                Segment::Bytes(bytes) => (bytes.len() as u64, Some(bytes.len() as u64)),
                Segment::Chunks { remaining, .. } => (*remaining, Some(*remaining)),
                Segment::Boxed { hint, .. } => (hint.lower(), hint.upper()),
            };
            lower = lower.saturating_add(low);
            upper = upper.zip(up).map(|(a, b)| a.saturating_add(b));
        }
        let mut hint = SizeHint::new();
        hint.set_lower(lower);
        if let Some(upper) = upper {
            hint.set_upper(upper);
        }
        hint
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("segments", &self.segments.len())
            .field("size_hint", &self.size_hint())
            .finish()
    }
}

pin_project_lite::pin_project! {
    /// A body whose errors become `io::Error`s.
    struct MapErr<B> {
        #[pin]
        inner: B,
    }
}

impl<B> Body for MapErr<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let frame = ready!(self.project().inner.poll_frame(cx));
        Poll::Ready(frame.map(|frame| frame.map_err(|e| io::Error::other(e.into()))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
