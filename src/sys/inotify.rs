//! inotify: the kernel's file-change events, for following growing and
//! rotated files without polling.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A new inotify instance, non-blocking and close-on-exec.
pub(crate) fn inotify() -> io::Result<OwnedFd> {
    // SAFETY: valid flags; no pointers involved.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: inotify_init1 just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What a watch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// Changes of a file: writes, truncation, metadata, being moved or deleted.
    File,
    /// Entries appearing in or leaving a directory.
    Directory,
}

/// Watches `path` on the inotify instance `fd`; returns the watch descriptor.
pub(crate) fn add_watch(fd: &OwnedFd, path: &Path, what: Watch) -> io::Result<i32> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mask = match what {
        Watch::File => {
            libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_MOVE_SELF | libc::IN_DELETE_SELF
        }
        Watch::Directory => {
            libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_MOVED_FROM | libc::IN_DELETE
        }
    };
    // SAFETY: `path` is a valid NUL-terminated string; the descriptor is
    // borrowed for the duration of the call.
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) };
    if wd == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(wd)
}

/// Removes a watch (errors ignored: the watch may be gone with its file).
pub(crate) fn remove_watch(fd: &OwnedFd, wd: i32) {
    // SAFETY: the descriptor is borrowed for the duration of the call.
    unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), wd) };
}

/// Reads and discards every queued event. Returns whether there was any;
/// `WouldBlock` is not an error here.
pub(crate) fn drain(fd: &OwnedFd) -> io::Result<bool> {
    let mut buf = [0u8; 4096];
    let mut any = false;
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            n if n > 0 => any = true,
            0 => return Ok(any),
            _ => {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::WouldBlock => return Ok(any),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(err),
                }
            }
        }
    }
}
