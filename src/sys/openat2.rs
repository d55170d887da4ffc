//! `openat2(2)`: opening a path beneath a directory with the kernel
//! refusing every step out of it (`RESOLVE_BENEATH`), and a lookup that
//! never waits on the disk (`RESOLVE_CACHED`).

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

/// How [`openat2`] resolves a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolve {
    /// Anywhere, waiting on the disk if need be.
    Anywhere,
    /// Only beneath the directory: the kernel refuses any step out of it
    /// with `EXDEV` (`..`, absolute or escaping symlinks), a magic link such
    /// as `/proc/self/fd/N` with `ELOOP`, even one swapped in while it
    /// resolves.
    Beneath,
}

/// Opens `path` for reading, relative to the directory `dir` (or the
/// current directory), as a directory if `directory`, without waiting on a
/// FIFO (`O_NONBLOCK`) or taking a terminal (`O_NOCTTY`).
///
/// With `cached_only`, the kernel answers only from its caches of names
/// and inodes (`RESOLVE_CACHED`, Linux 5.12): a lookup that would wait on
/// the disk fails with `WouldBlock` (`EAGAIN`) instead, so an async worker
/// may call it.
///
/// `Ok(None)` if this kernel cannot: it has no `openat2` (before Linux
/// 5.6, `ENOSYS`), or a seccomp filter refuses it (`EPERM`, as container
/// runtimes do for calls they do not know); with `cached_only`, also
/// without `RESOLVE_CACHED` (`EINVAL`).
pub(crate) fn openat2(
    dir: Option<&File>,
    path: &Path,
    directory: bool,
    resolve: Resolve,
    cached_only: bool,
) -> io::Result<Option<File>> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    let mut flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    if directory {
        flags |= libc::O_DIRECTORY;
    }
    let mut how = OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve: 0,
    };
    if resolve == Resolve::Beneath {
        how.resolve |= libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    }
    if cached_only {
        how.resolve |= libc::RESOLVE_CACHED;
    }
    let dir = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: `dir` is an open descriptor (or AT_FDCWD) for the duration of
    // the call, `c_path` a NUL-terminated string that outlives it, and `how`
    // an initialised `open_how` whose size is passed along.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            c_path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ENOSYS | libc::EPERM) => Ok(None),
            Some(libc::EINVAL) if cached_only => Ok(None),
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
        let beneath = |dir: &File, path: &str| {
            openat2(Some(dir), Path::new(path), false, Resolve::Beneath, false)
        };
        let Some(file) = beneath(&root, "f").unwrap() else {
            eprintln!("skipped: no openat2 on this kernel");
            return;
        };
        assert_eq!(std::io::read_to_string(file).unwrap(), "f");
        let out = beneath(&root, "../f").unwrap_err();
        assert_eq!(out.raw_os_error(), Some(libc::EXDEV));
        let proc_self = File::open("/proc/self").unwrap();
        let magic = beneath(&proc_self, "fd/0").unwrap_err();
        assert_eq!(magic.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn a_cached_only_lookup_opens_what_the_kernel_has_cached() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "f").unwrap();
        let path = dir.path().join("f");
        // Just made, so its names are cached: it opens (or this kernel has
        // no RESOLVE_CACHED).
        let cached = openat2(None, &path, false, Resolve::Anywhere, true).unwrap();
        if let Some(file) = cached {
            assert_eq!(std::io::read_to_string(file).unwrap(), "f");
        }
        let root = openat2(None, dir.path(), true, Resolve::Anywhere, true).unwrap();
        if let Some(root) = root {
            let missing = openat2(
                Some(&root),
                Path::new("nope"),
                false,
                Resolve::Beneath,
                true,
            );
            let error = missing.unwrap_err();
            assert!(matches!(
                error.raw_os_error(),
                Some(libc::ENOENT | libc::EAGAIN)
            ));
        }
    }
}
