//! [`SendfileStream`]: a TCP connection that sends the bytes of cached
//! files with `sendfile`, straight from the page cache.
//!
//! ```text
//!   hyper: writev([headers, body Bytes]) ─> poll_write_vectored
//!       headers (not a file's) ─> sendmsg(MSG_MORE)        copied, held for the body
//!       body (a cached file's, <= 16 pages) ─> sendfile    page references, no copy
//!       body (longer)          ─> sendmsg                  copied
//! ```

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::sendable::{self, Part};
use crate::sys;

/// A TCP connection whose writes send the bytes of files that a
/// [`ServeDir`](super::ServeDir) or [`ServeFile`](super::ServeFile) with an
/// [open-file cache](super::ServeDir::open_file_cache) has mapped with
/// `sendfile(2)`: the kernel hands the file's cached pages to the socket,
/// as nginx's `sendfile on` does, instead of copying them through the
/// mapping into the socket's buffer. Everything else (headers, other
/// handlers' bodies, files served without the cache) is written as by the
/// `TcpStream` itself.
///
/// A server hands it to hyper in place of the `TcpStream`, or to axum
/// through a `Listener` whose `accept` wraps each stream. The bytes on the
/// wire are the same either way; a file cut while it is sent ends the
/// response with an error either way, never with bytes the file no longer
/// has. It is for plain HTTP, HTTP/1 or HTTP/2: h2 (0.4) hands each DATA
/// frame's payload over as a slice (after copying its first 247 bytes into
/// its own buffer, behind the frame's head), so the rest of the frame goes
/// out with `sendfile` too. Behind TLS the bytes must pass through the process
/// to be encrypted.
///
/// # Examples
///
/// With hyper:
///
/// ```no_run
/// use hyper_util::rt::TokioIo;
/// use mapview::http::SendfileStream;
///
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let (stream, _) = listener.accept().await?;
/// stream.set_nodelay(true)?;
/// let io = TokioIo::new(SendfileStream::new(stream));
/// // hyper::server::conn::http1::Builder::new().serve_connection(io, service)
/// # drop(io);
/// # Ok(())
/// # }
/// ```
///
/// With axum:
///
/// ```no_run
/// use std::net::SocketAddr;
/// use std::time::Duration;
///
/// use mapview::http::{SendfileStream, ServeDir};
///
/// struct SendfileListener(tokio::net::TcpListener);
///
/// impl axum::serve::Listener for SendfileListener {
///     type Io = SendfileStream;
///     type Addr = SocketAddr;
///
///     async fn accept(&mut self) -> (SendfileStream, SocketAddr) {
///         loop {
///             match self.0.accept().await {
///                 Ok((stream, addr)) => return (SendfileStream::new(stream), addr),
///                 // Out of file descriptors and the like: wait, don't spin.
///                 Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
///             }
///         }
///     }
///
///     fn local_addr(&self) -> std::io::Result<SocketAddr> {
///         self.0.local_addr()
///     }
/// }
///
/// # async fn run() -> std::io::Result<()> {
/// let files = ServeDir::new("public").open_file_cache(Duration::from_secs(1), 1024, 1 << 30);
/// let app = axum::Router::new().nest_service("/files", files);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(SendfileListener(listener), app).await
/// # }
/// ```
#[derive(Debug)]
pub struct SendfileStream {
    stream: TcpStream,
    choice: Choice,
}

impl SendfileStream {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            choice: Choice {
                max_pages: MAX_PAGES,
                copying_to: 0,
            },
        }
    }

    /// Sends a file's parts of up to `pages` pages with `sendfile`, and
    /// copies longer ones (0: copies every part). The default, 16, is what
    /// measured best over loopback, where some longer `sendfile`s cost
    /// twice the CPU of the copy; a network card's driver may do better
    /// with longer ones.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mapview::http::SendfileStream;
    ///
    /// # async fn run() -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
    /// let (stream, _) = listener.accept().await?;
    /// let stream = SendfileStream::new(stream).sendfile_max_pages(64);
    /// # drop(stream);
    /// # Ok(())
    /// # }
    /// ```
    pub fn sendfile_max_pages(mut self, pages: usize) -> Self {
        self.choice.max_pages = pages;
        self
    }

    /// The stream inside.
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// The stream inside, unwrapped.
    pub fn into_inner(self) -> TcpStream {
        self.stream
    }

    /// The address of the peer.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::peer_addr`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }
}

impl From<TcpStream> for SendfileStream {
    fn from(stream: TcpStream) -> Self {
        Self::new(stream)
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Self { stream, choice } = self.get_mut();
        loop {
            ready!(stream.poll_write_ready(cx))?;
            // A `WouldBlock` clears the readiness tokio had cached, so the
            // next round waits for the socket.
            match stream.try_io(Interest::WRITABLE, || send(stream, bufs, choice)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                sent => return Poll::Ready(sent),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The most pages of a file a write sends with `sendfile` by default;
/// longer parts are copied. Over loopback, per request, `sendfile` cost the
/// server 0.70-0.84x the CPU of the copy for ranges of 4 to 13 pages and
/// about 0.8x for 16 and 17 pages starting on a page, but 2.0-2.4x for 16
/// to 21 pages starting inside one, and 0.96-1.06x for 32 to 65; whole
/// downloads in 256 KiB chunks went at 0.30x the copy's rate, held by the
/// client's CPU (BENCHMARKS.md, "`sendfile` or a copy"). Up to 16 pages,
/// every case measured was cheaper with `sendfile`.
const MAX_PAGES: usize = 16;

/// Which writes go out with `sendfile`.
#[derive(Debug)]
struct Choice {
    max_pages: usize,
    /// Where the last slice too long for `sendfile` ends: what is left of it
    /// after a short write is copied too, as the whole was. (Random 64 KiB
    /// ranges, 17 pages, cost the server 1.06x the CPU of the copy per
    /// request when such rests went out with `sendfile`, and 1.00x when
    /// copied: `serve_bench.sh`, `SERVERS="mapview-copy mapview-cached"`.)
    copying_to: usize,
}

impl Choice {
    /// The file bytes `buf` is, if they are to go out with `sendfile`: a
    /// cached file's, at most `max_pages` pages, and not the rest of a
    /// slice being copied.
    fn file_part(&mut self, buf: &[u8]) -> Option<Part> {
        let start = buf.as_ptr() as usize;
        let end = start + buf.len();
        if end == self.copying_to {
            return None;
        }
        let page = sys::page_size();
        if end.div_ceil(page) - start / page > self.max_pages {
            self.copying_to = end;
            return None;
        }
        sendable::part_of(buf)
    }
}

/// Sends what it can of `bufs`, in order, without blocking: runs of memory
/// with one `sendmsg`, the parts of cached files that `choice` picks with
/// `sendfile`. Stops
/// at the first short send; an error after some bytes went out is left for
/// the next call (a socket's errors repeat).
fn send(socket: &TcpStream, bufs: &[IoSlice<'_>], choice: &mut Choice) -> io::Result<usize> {
    let mut sent = 0;
    let mut rest = bufs;
    let mut next = rest.first().and_then(|buf| choice.file_part(buf));
    while !rest.is_empty() {
        let (wanted, result) = match next.take() {
            Some(Part { object, offset }) => {
                let (part, after) = rest.split_at(1);
                rest = after;
                let len = part[0].len();
                let result = match sys::send_file(socket, &object.file, offset, len) {
                    // The file ends before the bytes its mapping had: it
                    // was cut. Never short bytes behind a full length.
                    Ok(0) => Err(sys::truncated()),
                    // A file system that cannot hand its pages to a
                    // socket: copy them.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                        sys::send_vectored(socket, part, false)
                    }
                    result => result,
                };
                (len, result)
            }
            None => {
                // Memory up to the next file's bytes: one call, held back
                // with MSG_MORE for them so both leave in one segment.
                let mut run = 1;
                while run < rest.len() {
                    next = choice.file_part(&rest[run]);
                    if next.is_some() {
                        break;
                    }
                    run += 1;
                }
                let (memory, after) = rest.split_at(run);
                rest = after;
                let wanted = memory.iter().map(|buf| buf.len()).sum();
                if wanted == 0 {
                    continue;
                }
                (wanted, sys::send_vectored(socket, memory, next.is_some()))
            }
        };
        match result {
            Ok(n) => {
                sent += n;
                if n < wanted {
                    break;
                }
            }
            Err(_) if sent > 0 => break,
            Err(e) => return Err(e),
        }
        if next.is_none() {
            next = rest.first().and_then(|buf| choice.file_part(buf));
        }
    }
    Ok(sent)
}
