//! Serving files over HTTP: tower services shaped like tower-http's, whose
//! response bodies are zero-copy `Bytes` from a mapping of the file
//! (feature `http`).
//!
//! [`ServeDir`] serves a directory tree and [`ServeFile`] one file. Both
//! implement `tower_service::Service<http::Request<B>>` with
//! `Response<`[`ResponseBody`]`>`, error type `Infallible` and a
//! `poll_ready` that is always ready, so they mount where tower-http's do:
//! `axum::Router::new().nest_service("/files", ServeDir::new("public"))`.
//!
//! ```text
//!   request ─> method? ─> (blocking pool) resolve beneath the root ─> open, fstat, mmap
//!              405          400 / 403 / 404 (or the fallback)            │
//!                                                                       v
//!             preconditions (412 / 304) ─> Range (206 / 416 / multipart) ─> 200
//!             body: MappedFile::stream(range).chunks(N), zero-copy Bytes
//! ```
//!
//! What a response carries:
//!
//! - GET and HEAD; other methods get 405 with `Allow: GET, HEAD`.
//! - A strong `ETag` made of the file's inode, size and modification time,
//!   and `Last-Modified`; `If-Match` / `If-Unmodified-Since` (412),
//!   `If-None-Match` / `If-Modified-Since` (304) and `If-Range`, in the
//!   order of RFC 9110 section 13.2.2.
//! - `Range`: one range gets a 206, several a `multipart/byteranges` 206
//!   (overlapping ranges merged; more than a few dozen ranges get the whole
//!   file, an abuse guard), none that fits the file a 416.
//! - `Content-Type` from the extension (a small table), an optional
//!   `Cache-Control`, and precompressed `.br` / `.zst` / `.gz` siblings
//!   chosen by `Accept-Encoding`.
//!
//! Request paths are percent-decoded and resolved so that they cannot leave
//! the root: `..` (even encoded), encoded slashes and NUL are refused, and
//! the file is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`
//! relative to the root, so a symlink that leads out (even one swapped in
//! during the request) is refused by the kernel; so is an absolute symlink,
//! even one that points inside the root. Where `openat2` is missing
//! (Linux before 5.6, or a seccomp filter), the path is canonicalized and
//! checked to lie inside the root, which a concurrent swap can race.
//!
//! A file truncated while its body is being sent ends the body with an
//! error (the connection is cut), never with wrong bytes behind a 200: the
//! bytes come from a [`ViewStream`](crate::ViewStream).
//!
//! Opening and mapping happen on tokio's blocking pool, so the services
//! must be called inside a tokio runtime. With
//! [`open_file_cache`](ServeDir::open_file_cache), a file is mapped once
//! for all the requests for its path: within a set interval a request is
//! answered right on the worker, its body a slice of that mapping (no
//! lookup, no open, no `mmap`, no trip to the blocking pool; pages not yet
//! resident are faulted in by the pager in the background). After the
//! interval, one lookup and `fstat` tells whether the path still names the
//! same file (device, inode, size, modification time): if so, its mapping
//! goes on serving. That check runs on the worker when the kernel answers
//! the lookup from its caches (`openat2` with `RESOLVE_CACHED`, Linux
//! 5.12), and on the blocking pool only when it would wait on the disk.
//!
//! A server that wraps its connections in [`SendfileStream`] sends the
//! bytes of cached files with `sendfile`, from the page cache to the
//! socket, instead of copying them through the mapping (nginx's
//! `sendfile on`): the copy is most of a small-file server's work.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use http_body_util::BodyExt;
//! use mapview::http::ServeDir;
//! use tower_service::Service;
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("hello.txt"), "hello, world")?;
//! let mut files = ServeDir::new(dir.path());
//!
//! let request = http::Request::get("/hello.txt")
//!     .header("range", "bytes=7-")
//!     .body(())
//!     .unwrap();
//! let Ok(response) = files.call(request).await;
//! assert_eq!(response.status(), http::StatusCode::PARTIAL_CONTENT);
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(body, "world");
//! # Ok(())
//! # }
//! ```

mod body;
mod cache;
mod conditional;
mod content_type;
mod encoding;
mod exclusive;
mod file;
mod future;
mod multipart;
mod range;
mod resolve;
mod respond;
mod sendable;
mod sendfile_stream;
mod serve_dir;
mod serve_file;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use sendfile_stream::SendfileStream;
pub use serve_dir::{NotFound, ServeDir};
pub use serve_file::ServeFile;
