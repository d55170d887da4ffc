//! One-way byte pipes between processes through named shared memory.
//!
//! [`create`] makes a pipe under a name and returns its [`PipeWriter`]
//! ([`AsyncWrite`](tokio::io::AsyncWrite)); any process of the same user
//! [`open`]s it by name and gets the [`PipeReader`]
//! ([`AsyncRead`](tokio::io::AsyncRead) +
//! [`AsyncBufRead`](tokio::io::AsyncBufRead)). Bytes move through a
//! single-producer single-consumer ring in the shared memory, so a transfer
//! costs one copy in and one copy out (none out with `fill_buf`), and no
//! system call while both sides are busy.
//!
//! ```text
//!   writer process                 /dev/shm/NAME                 reader process
//!  ┌────────────┐   copy in   ┌──────────┬─────────────────┐   copy out ┌────────────┐
//!  │ PipeWriter │ ──────────> │  header  │ data (capacity) │ ─────────> │ PipeReader │
//!  └─────┬──────┘             │ head/tail│   ring buffer   │            └─────┬──────┘
//!        │                    └──────────┴─────────────────┘                  │
//!        └──────────── wake-up socket (only when a side sleeps) ──────────────┘
//! ```
//!
//! - **Waiting.** The writer's writes return `Pending` while the ring is
//!   full, the reader's reads while it is empty. A side that is about to
//!   sleep says so in the header; the other side then sends one byte over a
//!   Unix socket that connects the two ends, and tokio's reactor wakes the
//!   sleeping task. Before it sleeps, a waiting side yields and looks again
//!   for 20 µs, which catches a quick reply without any system call (a
//!   64-byte round trip then takes about 1 µs, against ~15 µs through a
//!   Unix socket). An idle pipe costs no CPU and no thread.
//! - **End of stream.** The reader sees EOF after the writer's `shutdown` or
//!   drop, once it has read every byte. When `shutdown` returns `Ok`, a
//!   producer may exit without losing a byte: at once if a reader is
//!   attached (it holds the shared memory), else once a reader has come and
//!   read everything (see [`PipeWriter`]). A consumer that may start first
//!   waits for the pipe with [`open_wait`].
//! - **Crashes.** When a process dies the kernel closes its end of the
//!   socket: a reader whose writer died gets `BrokenPipe` as soon as the ring
//!   is drained (never a hang); a writer whose reader is gone gets
//!   `BrokenPipe`. The shared memory is removed when both ends are gone, crash
//!   or not (see [`MappedFile::create_shared`](crate::MappedFile::create_shared)).
//! - **Hostile peers** cannot crash an end, but can end or stop the stream
//!   or feed it bytes: see [below](#hostile-peers).
//!
//! # Hostile peers
//!
//! The shared memory of a pipe is private to its user: [`open`] refuses an
//! object that another user owns or that has group or other permission bits
//! (`PermissionDenied`), [`create`] never takes over another user's object
//! under the name (`AlreadyExists`), and both ends check that the process
//! at the other end of the wake-up socket runs as that user. So the peer to
//! fear is the other end, or another process of the same user, that breaks
//! the protocol: writes anything anywhere in the shared memory, truncates
//! it, grows it back, or replaces the name with another object.
//!
//! What such a peer **cannot** do, through [`AsyncRead`](tokio::io::AsyncRead),
//! [`AsyncWrite`](tokio::io::AsyncWrite), `flush`, `shutdown` or drop:
//!
//! - kill the process: every access of the ends to the shared memory,
//!   header words included, is guarded against `SIGBUS`, and so are the
//!   slices `fill_buf` lends out (see below);
//! - make an end touch memory outside the ring, whatever the header says;
//! - make the reader return the zeros a truncation leaves: the reader checks
//!   an end marker behind the data after each copy, and a truncation (even
//!   one grown back, or one inside the first page, which faults nowhere)
//!   removes it;
//! - make an end block a thread: every poll returns.
//!
//! What it **can** do, and what the ends report:
//!
//! - Truncate or grow back the shared memory: both ends fail with
//!   `UnexpectedEof`, for good (every later call fails alike). A write that
//!   returned `Ok` before the truncation is lost then, and the reader says
//!   so with that error rather than returning zeros.
//! - Write nonsense into the counters or the end marker: `InvalidData`, for
//!   good, on the end that sees it (counters must stay within a capacity of
//!   each other and never go backwards). Magic, version, capacity and token
//!   are read only when the reader opens: corrupt then, they are
//!   `InvalidData`; corrupt later, they change nothing.
//! - Feed the reader bytes the writer did not send: a pipe moves bytes, it
//!   does not authenticate them. Bytes in the data area can be overwritten,
//!   and `head` moved ahead by less than a capacity hands out what the ring
//!   held. Authenticate the content if the peer is not trusted.
//! - End the stream early (a set `state` flag is EOF for the reader,
//!   `BrokenPipe` for the writer), or stop it: a peer that stops reading or
//!   writing, or clears a waiting flag so that an end sleeps through its
//!   wake-up, leaves the other end waiting, as a slow peer would. Bound
//!   waits with [`tokio::time::timeout`] where that matters.
//! - Replace the name with another object: open ends carry on with theirs,
//!   leave the new one alone when they drop, and [`open`] validates the
//!   newcomer like any pipe.
//!
//! The zero-copy [`fill_buf`](tokio::io::AsyncBufReadExt::fill_buf) of
//! [`PipeReader`] lends out the shared memory itself, so there a peer can
//! also change the bytes while the slice lives, and a truncation while it
//! lives shows as zeros in it (no `SIGBUS`: lent memory is covered), with
//! `UnexpectedEof` on the next call. Use
//! [`AsyncRead`](tokio::io::AsyncRead) when the peer is not trusted that
//! far.
//!
//! Both ends must be created and used inside a tokio runtime with IO enabled
//! (`#[tokio::main]` or `Builder::enable_io`). Linux only: the wake-up
//! socket lives in Linux's abstract socket namespace, which also means both
//! processes must share a network namespace.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let name = format!("mapview-doc-pipe-{}", std::process::id());
//! let mut writer = mapview::pipe::create(&name, 64 * 1024)?;
//! // Usually in another process:
//! let mut reader = mapview::pipe::open(&name)?;
//!
//! let producer = tokio::spawn(async move {
//!     writer.write_all(b"hello through shared memory").await?;
//!     writer.shutdown().await // the reader sees EOF after the last byte
//! });
//! let mut text = String::new();
//! reader.read_to_string(&mut text).await?;
//! assert_eq!(text, "hello through shared memory");
//! producer.await??;
//! # Ok(())
//! # }
//! ```

mod link;
mod reader;
mod ring;
mod spin;
mod writer;

use std::io;
use std::time::{Duration, Instant};

pub use reader::PipeReader;
pub use writer::PipeWriter;

use ring::Ring;

fn check_runtime(call: &str) -> io::Result<()> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(io::Error::other(format!(
            "mapview::pipe::{call} must be called inside a tokio runtime"
        ))),
    }
}

/// Creates a pipe named `name` with a ring of `capacity` bytes (any size
/// from 1 byte to 1 TiB, not only powers of two) and returns its writing end.
/// The reader [`open`]s it by name, in this process or another.
///
/// # Errors
///
/// - `AlreadyExists` if a pipe or shared map of this name is alive (a pipe
///   has exactly one writer), or another user's object has the name.
/// - `InvalidInput` for a bad name (rules as in
///   [`MappedFile::create_shared`](crate::MappedFile::create_shared)) or a
///   capacity of 0 or above 1 TiB.
/// - An error of kind `Other` when called outside a tokio runtime, or in
///   one without its IO driver.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let name = format!("mapview-doc-create-{}", std::process::id());
/// let mut writer = mapview::pipe::create(&name, 4096)?;
/// let second = mapview::pipe::create(&name, 4096); // a pipe has one writer
/// assert_eq!(second.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
/// let mut reader = mapview::pipe::open(&name)?; // usually in another process
/// let producer = tokio::spawn(async move { writer.write_all(&[7; 10_000]).await });
/// let mut received = Vec::new();
/// reader.read_to_end(&mut received).await?;
/// producer.await??;
/// assert_eq!(received, [7; 10_000]); // more than the ring holds at once
/// # Ok(())
/// # }
/// ```
pub fn create(name: &str, capacity: usize) -> io::Result<PipeWriter> {
    check_runtime("create")?;
    PipeWriter::new(Ring::create(name, capacity)?)
}

/// Opens the pipe named `name`, made by [`create`] in any process of the
/// same user, and returns its reading end.
///
/// # Errors
///
/// - `NotFound` if there is no pipe of this name (or it is already gone:
///   the shared memory disappears with the last end).
/// - `AlreadyExists` if the pipe already has (or had) a reader: a pipe has
///   exactly one.
/// - `InvalidData` if the shared memory is not a pipe or its header is
///   corrupt.
/// - `PermissionDenied` if the shared memory is owned by another user, or
///   has group or other permission bits (someone else may read or forge
///   it).
/// - `InvalidInput` for a bad name.
/// - An error of kind `Other` when called outside a tokio runtime, or in
///   one without its IO driver.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
///
/// let name = format!("mapview-doc-open-{}", std::process::id());
/// let missing = mapview::pipe::open(&name).unwrap_err();
/// assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
/// let mut writer = mapview::pipe::create(&name, 4096)?; // usually in another process
/// let reader = mapview::pipe::open(&name)?;
/// let producer = tokio::spawn(async move { writer.write_all(b"a line\n").await });
/// let mut lines = reader.lines();
/// assert_eq!(lines.next_line().await?.as_deref(), Some("a line"));
/// assert_eq!(lines.next_line().await?, None); // the writer is gone: EOF
/// producer.await??;
/// # Ok(())
/// # }
/// ```
pub fn open(name: &str) -> io::Result<PipeReader> {
    check_runtime("open")?;
    PipeReader::new(Ring::open(name)?)
}

/// Opens the pipe named `name` like [`open`], but if there is none yet,
/// waits up to `timeout` for a writer to [`create`] it. A reader may so
/// start before its writer. It looks for the pipe every few milliseconds
/// (a failed look is one system call).
///
/// # Errors
///
/// - `TimedOut` if no pipe of this name appeared within `timeout`.
/// - The errors of [`open`] but `NotFound`.
/// - An error of kind `Other` when called outside a tokio runtime, or in
///   one without its IO and time drivers.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use std::time::Duration;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let name = format!("mapview-doc-wait-{}", std::process::id());
/// // The reader starts first; the writer (usually another process) comes later.
/// let reader = tokio::spawn({
///     let name = name.clone();
///     async move {
///         let mut reader = mapview::pipe::open_wait(&name, Duration::from_secs(10)).await?;
///         let mut text = String::new();
///         reader.read_to_string(&mut text).await?;
///         std::io::Result::Ok(text)
///     }
/// });
/// tokio::task::yield_now().await;
/// let mut writer = mapview::pipe::create(&name, 4096)?;
/// writer.write_all(b"worth the wait").await?;
/// writer.shutdown().await?; // the reader holds every byte now
/// assert_eq!(reader.await??, "worth the wait");
/// # Ok(())
/// # }
/// ```
pub async fn open_wait(name: &str, timeout: Duration) -> io::Result<PipeReader> {
    check_runtime("open_wait")?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match open(name) {
            // Absent, or made a moment ago and its header not yet written.
            Err(e) if e.kind() == io::ErrorKind::NotFound || ring::not_initialised(&e) => {}
            opened => return opened,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no pipe named {name:?} appeared within {timeout:?}"),
            ));
        }
        let sleep = crate::driver::with_drivers("mapview::pipe::open_wait", "IO and time", || {
            Ok(tokio::time::sleep(pause.min(left)))
        })?;
        sleep.await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// The longest pause of [`open_wait`] between two looks: the most it adds
/// to the time a pipe takes to reach its reader.
const MAX_PAUSE: Duration = Duration::from_millis(10);
