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
    retried(|| {
        // SAFETY: the descriptor is borrowed for the call; `buf` is valid for
        // reads of `buf.len()` bytes.
        unsafe {
            libc::send(
                socket.as_fd().as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        }
    })
}

/// The count a system call returned, called again while a signal
/// interrupted it; its error otherwise.
fn retried(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        match usize::try_from(call()) {
            Ok(count) => return Ok(count),
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// Sends `bufs` on a connected socket without blocking and without raising
/// `SIGPIPE`; with `more`, as `MSG_MORE`: the kernel holds a last partial
/// segment back for what the caller sends next (a body behind its headers).
///
/// # Errors
///
/// As [`send_nowait`].
#[cfg(feature = "http")]
pub(crate) fn send_vectored(
    socket: impl AsFd,
    bufs: &[io::IoSlice<'_>],
    more: bool,
) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    // SAFETY: an all-zero msghdr is a valid empty one.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix; the kernel only reads
    // through these pointers.
    message.msg_iov = bufs.as_ptr().cast_mut().cast();
    message.msg_iovlen = bufs.len().min(libc::c_int::MAX as usize) as _;
    // SAFETY: the descriptor is borrowed for the call; `message` points at
    // `bufs`, each valid for reads of its length.
    retried(|| unsafe { libc::sendmsg(socket.as_fd().as_raw_fd(), &message, flags) })
}

/// Sends `len` bytes of `file` from `offset` on a connected non-blocking
/// socket with `sendfile(2)`: the kernel hands the page cache's pages to the
/// socket without copying them through this process. `Ok(0)` when the
/// file ends at `offset` (it was cut).
///
/// A socket whose peer is gone raises `SIGPIPE` here (`sendfile` takes no
/// `MSG_NOSIGNAL`), as it does for tokio's own writes: Rust programs ignore
/// `SIGPIPE` from the start.
///
/// # Errors
///
/// `WouldBlock` when the socket's buffer is full; `BrokenPipe` or
/// `ConnectionReset` when the peer is gone; the file's read errors.
#[cfg(feature = "http")]
pub(crate) fn send_file(
    socket: impl AsFd,
    file: &std::fs::File,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    let mut offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    retried(|| {
        // SAFETY: both descriptors are borrowed for the call; `offset` is a
        // valid `off_t` the kernel advances (the file's own offset is left
        // alone).
        unsafe {
            libc::sendfile(
                socket.as_fd().as_raw_fd(),
                file.as_raw_fd(),
                &mut offset,
                len,
            )
        }
    })
}
