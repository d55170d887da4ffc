//! Socket calls that std and tokio do not offer as such.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// Sends `buf` on a connected socket without blocking and without raising
/// `SIGPIPE`, whatever readiness tokio has cached for it (a fresh socket has
/// none, so tokio's `try_write` would not even try).
///
/// # Errors
///
/// `WouldBlock` when the socket's buffer is full; `BrokenPipe` or
/// `ConnectionReset` when the peer is gone.
pub(crate) fn send_nowait(socket: impl AsFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the descriptor is borrowed for the call; `buf` is valid for
        // reads of `buf.len()` bytes.
        let sent = unsafe {
            libc::send(
                socket.as_fd().as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if sent >= 0 {
            return Ok(sent as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
