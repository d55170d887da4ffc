//! `openat2(2)` with `RESOLVE_BENEATH`: opening a path beneath a directory
//! with the kernel refusing every step out of it.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The kernel's `struct open_how` (libc's cannot be built outside libc).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `relative` beneath the directory `dir` for reading, without
/// waiting on a FIFO (`O_NONBLOCK`) or taking a terminal (`O_NOCTTY`). The
/// kernel refuses any step out of `dir` with `EXDEV` (`..`, absolute or
/// escaping symlinks), a magic link such as `/proc/self/fd/N` with `ELOOP`,
/// even one swapped in while it resolves.
///
/// `Ok(None)` if this kernel cannot: it has no `openat2` (before Linux
/// 5.6, `ENOSYS`), or a seccomp filter refuses it (`EPERM`, as container
/// runtimes do for calls they do not know).
pub(crate) fn openat2_beneath(dir: &File, relative: &Path) -> io::Result<Option<File>> {
    let path = CString::new(relative.as_os_str().as_bytes())?;
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `dir` is an open descriptor for the duration of the call,
    // `path` a NUL-terminated string that outlives it, and `how` an
    // initialised `open_how` whose size is passed along.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ENOSYS | libc::EPERM) => Ok(None),
            _ => Err(error),
        };
    }
    // SAFETY: the kernel just returned this descriptor (a file descriptor
    // fits in a c_int), and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    Ok(Some(File::from(fd)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_links_and_steps_out_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "f").unwrap();
        let root = File::open(dir.path()).unwrap();
        let Some(file) = openat2_beneath(&root, Path::new("f")).unwrap() else {
            eprintln!("skipped: no openat2 on this kernel");
            return;
        };
        assert_eq!(std::io::read_to_string(file).unwrap(), "f");
        let out = openat2_beneath(&root, Path::new("../f")).unwrap_err();
        assert_eq!(out.raw_os_error(), Some(libc::EXDEV));
        let proc_self = File::open("/proc/self").unwrap();
        let magic = openat2_beneath(&proc_self, Path::new("fd/0")).unwrap_err();
        assert_eq!(magic.raw_os_error(), Some(libc::ELOOP));
    }
}
