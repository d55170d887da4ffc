//! Unix system calls, with the Linux-only ones behind `cfg(target_os = "linux")`.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// Converts a `-1`-on-error return value into an `io::Result`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The shm_open path for a validated name: `/name`.
fn shm_path(name: &str) -> io::Result<CString> {
    CString::new(format!("/{name}"))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

/// How [`shm_open`] opens a named shared-memory object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShmOpen {
    /// Create a new object (`O_CREAT | O_EXCL`, mode 0600), read-write.
    CreateNew,
    /// Open an existing object read-write.
    Existing,
    /// Open an existing object read-only (to look at its identity).
    Inspect,
}

/// Opens a POSIX shared-memory object, always close-on-exec so that the
/// `flock` that marks this process as a holder is not inherited by children.
pub(crate) fn shm_open(name: &str, how: ShmOpen) -> io::Result<File> {
    let path = shm_path(name)?;
    let flags = libc::O_CLOEXEC
        | match how {
            ShmOpen::CreateNew => libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            ShmOpen::Existing => libc::O_RDWR,
            ShmOpen::Inspect => libc::O_RDONLY,
        };
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    let fd = check(unsafe { libc::shm_open(path.as_ptr(), flags, 0o600 as libc::mode_t) })?;
    // SAFETY: shm_open just returned this descriptor; nothing else owns it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Removes a shared-memory object's name.
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    let path = shm_path(name)?;
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    check(unsafe { libc::shm_unlink(path.as_ptr()) }).map(drop)
}

/// The `flock` operations the crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flock {
    /// Wait for a shared lock.
    Shared,
    /// Wait for an exclusive lock.
    Exclusive,
    /// Take an exclusive lock only if nobody holds any lock.
    TryExclusive,
    /// Release this descriptor's lock.
    Unlock,
}

/// Applies a `flock` to the open file description behind `fd`. Returns
/// `Ok(false)` only for [`Flock::TryExclusive`] when someone else holds a lock.
pub(crate) fn flock(fd: impl AsFd, op: Flock) -> io::Result<bool> {
    let op = match op {
        Flock::Shared => libc::LOCK_SH,
        Flock::Exclusive => libc::LOCK_EX,
        Flock::TryExclusive => libc::LOCK_EX | libc::LOCK_NB,
        Flock::Unlock => libc::LOCK_UN,
    };
    loop {
        // SAFETY: the descriptor is borrowed for the duration of the call.
        match check(unsafe { libc::flock(fd.as_fd().as_raw_fd(), op) }) {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// Grows `file` from `from` to `to` bytes with disk blocks allocated, so that
/// writes through a mapping cannot later fail for lack of space (which would
/// be a SIGBUS). Falls back to a sparse `set_len` where allocation is not
/// supported.
pub(crate) fn grow(file: &File, from: u64, to: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let (Ok(offset), Ok(len)) = (
            libc::off_t::try_from(from),
            libc::off_t::try_from(to - from),
        ) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "capacity too large",
            ));
        };
        // SAFETY: the descriptor is borrowed for the duration of the call.
        match check(unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) }) {
            Ok(_) => return Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOSYS)) => {}
            Err(e) => return Err(e),
        }
    }
    let _ = from;
    file.set_len(to)
}

/// A new anonymous memory object of `len` zeroed bytes, close-on-exec.
#[cfg(target_os = "linux")]
pub(crate) fn anonymous_file(len: u64) -> io::Result<File> {
    let name = c"mapview-anonymous";
    // SAFETY: `name` is a valid NUL-terminated string; flags are valid.
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: memfd_create just returned this descriptor; nothing else owns it.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.set_len(len)?;
    Ok(file)
}

/// A new anonymous memory object of `len` zeroed bytes, close-on-exec.
#[cfg(not(target_os = "linux"))]
pub(crate) fn anonymous_file(_len: u64) -> io::Result<File> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "anonymous maps need memfd_create (Linux)",
    ))
}
