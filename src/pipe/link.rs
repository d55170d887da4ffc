//! The wake-up link: a connected Unix stream socket between the two ends of
//! a pipe, carrying no data, only wake-ups and the peer's death.
//!
//! ```text
//!   writer                                   reader
//!   create: bind + listen  "\0mapview-pipe-<pid>-<token>"   (abstract: no file)
//!                          <────────── connect ───────────  open
//!   accept (lazily, the first time it needs the link)
//!   ring was empty and reader_waiting set  ── 1 byte ──>  socket readable: re-check ring
//!   <── 1 byte ──  ring was full and writer_waiting set
//!   process dies / end dropped: the kernel closes the socket ──>  peer sees EOF
//! ```
//!
//! Both sockets are registered with tokio's reactor, so a waiting end costs
//! no thread and no CPU: its task sleeps until the peer sends a byte or the
//! peer's socket is closed, which the kernel does when the peer's process
//! dies however it dies. The ring's `*_waiting` flags make sure a byte is only
//! sent to a side that is about to sleep, so a busy pipe makes no system
//! calls at all.
//!
//! The socket lives in Linux's abstract namespace, so nothing is left on any
//! file system after a crash. Abstract names are visible to every user of the
//! machine (in `/proc/net/unix`), so both ends check with `SO_PEERCRED` that
//! the peer runs as the user who owns the pipe's shared memory; the random
//! token in the name keeps other users from taking the name first.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener as StdListener, UnixStream as StdStream};
use std::task::{ready, Context, Poll};

use tokio::net::{UnixListener, UnixStream};

use crate::driver::with_drivers;
use crate::sys;

/// What a wait on the link ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signal {
    /// The peer sent a wake-up: look at the ring again.
    Woken,
    /// The peer's socket is closed: it was dropped or its process died.
    Gone,
}

/// One end of the wake-up link.
#[derive(Debug)]
pub(super) enum Link {
    /// The writer, before the reader's connection is accepted. The std
    /// listener (a duplicate of the tokio one) accepts without a task
    /// context; the tokio one waits for a connection.
    Listening {
        waiting: UnixListener,
        now: StdListener,
        owner: u32,
    },
    /// Connected to the peer.
    Connected(UnixStream),
    /// The peer is gone, or never came (its socket is closed).
    Gone,
}

fn address(token: u64) -> io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("mapview-pipe-{token:016x}"))
}

/// The listener, registered with the current runtime's IO driver.
fn register_listener(listener: StdListener) -> io::Result<UnixListener> {
    with_drivers("mapview::pipe", "IO", || UnixListener::from_std(listener))
}

/// The stream, registered with the current runtime's IO driver.
fn register_stream(stream: StdStream) -> io::Result<UnixStream> {
    with_drivers("mapview::pipe", "IO", || UnixStream::from_std(stream))
}

fn check_peer(stream: &UnixStream, owner: u32) -> io::Result<()> {
    let uid = stream.peer_cred()?.uid();
    if uid != owner {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("pipe peer runs as uid {uid}, not as the pipe's owner {owner}"),
        ));
    }
    Ok(())
}

impl Link {
    /// Listens for the reader on the socket named by `token`. `owner` is the
    /// uid the reader must run as. Must be called inside a tokio runtime.
    pub(super) fn listen(token: u64, owner: u32) -> io::Result<Self> {
        let listener = StdListener::bind_addr(&address(token)?)?;
        listener.set_nonblocking(true)?;
        let now = listener.try_clone()?;
        Ok(Self::Listening {
            waiting: register_listener(listener)?,
            now,
            owner,
        })
    }

    /// Connects to the writer's socket named by `token`. A writer that is no
    /// longer listening (dropped, or its process died) gives [`Link::Gone`].
    /// Must be called inside a tokio runtime.
    pub(super) fn connect(token: u64, owner: u32) -> io::Result<Self> {
        let stream = match StdStream::connect_addr(&address(token)?) {
            Ok(stream) => stream,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(Self::Gone),
            Err(e) => return Err(e),
        };
        stream.set_nonblocking(true)?;
        let stream = register_stream(stream)?;
        check_peer(&stream, owner)?;
        Ok(Self::Connected(stream))
    }

    /// Adopts a newly accepted connection if it comes from the owner;
    /// connections from anyone else are dropped.
    fn adopt(&mut self, stream: UnixStream, owner: u32) {
        if check_peer(&stream, owner).is_ok() {
            *self = Self::Connected(stream);
        }
    }

    /// Accepts the reader's connection if one is waiting; never blocks.
    fn accept_now(&mut self) -> io::Result<()> {
        while let Self::Listening { now, owner, .. } = self {
            let owner = *owner;
            let stream = match now.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            stream.set_nonblocking(true)?;
            self.adopt(register_stream(stream)?, owner);
        }
        Ok(())
    }

    /// Wakes the peer: sends it one byte without blocking. A full socket
    /// already holds unread wake-ups, and a closed one has nobody to wake,
    /// so neither is an error.
    pub(super) fn notify(&mut self) {
        if self.accept_now().is_err() {
            return;
        }
        if let Self::Connected(stream) = self {
            // WouldBlock: wake-ups are pending anyway. EPIPE/ECONNRESET: the
            // peer is gone, which the next wait reports.
            let _ = sys::send_nowait(&*stream, &[1]);
        }
    }

    /// Waits until the peer sends a wake-up or goes away. Drains every
    /// pending wake-up byte, so one wait consumes a burst of them.
    pub(super) fn poll_signal(&mut self, cx: &mut Context<'_>) -> Poll<Signal> {
        loop {
            match self {
                Self::Gone => return Poll::Ready(Signal::Gone),
                Self::Listening { waiting, owner, .. } => {
                    let owner = *owner;
                    match ready!(waiting.poll_accept(cx)) {
                        Ok((stream, _)) => self.adopt(stream, owner),
                        Err(_) => *self = Self::Gone,
                    }
                }
                Self::Connected(stream) => {
                    if ready!(stream.poll_read_ready(cx)).is_err() {
                        *self = Self::Gone;
                        continue;
                    }
                    let mut woken = false;
                    let mut buf = [0u8; 64];
                    loop {
                        match stream.try_read(&mut buf) {
                            Ok(0) => {
                                *self = Self::Gone;
                                return Poll::Ready(Signal::Gone);
                            }
                            Ok(_) => woken = true,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(_) => {
                                *self = Self::Gone;
                                return Poll::Ready(Signal::Gone);
                            }
                        }
                    }
                    if woken {
                        return Poll::Ready(Signal::Woken);
                    }
                    // Only a stale readiness: `try_read` cleared it, so the
                    // next poll registers the waker and sleeps.
                }
            }
        }
    }
}
