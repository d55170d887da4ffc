//! Linux system calls (the only platform so far: see `sys/mod.rs`).

use std::ffi::CString;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

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

/// Opens the file at `path` with `options` and returns it with its metadata,
/// refusing anything but a regular file with `InvalidInput`, without waiting
/// and without side effects on other kinds of files:
///
/// - It looks before it opens: opening a device or a FIFO can do something of
///   its own (a writer waiting on a FIFO is let through, only to get `EPIPE`
///   when we close it again).
/// - The open itself, for a path swapped in between, uses `O_NONBLOCK`, without
///   which opening a FIFO blocks until a writer comes (forever, for a log path
///   replaced by a FIFO), and `O_NOCTTY`; `fstat` then checks the file, and
///   `O_NONBLOCK` is cleared again before the file is returned.
pub(crate) fn open_regular(path: &Path, options: &mut OpenOptions) -> io::Result<(File, Metadata)> {
    let not_regular = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        )
    };
    // Absent (to be created, perhaps) or not accessible: the open tells.
    if std::fs::metadata(path).is_ok_and(|metadata| !metadata.is_file()) {
        return Err(not_regular());
    }
    let file = options
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(not_regular());
    }
    // SAFETY: the descriptor is borrowed for the duration of the call.
    let flags = check(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above; the flags are the file's own, less O_NONBLOCK.
    check(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) })?;
    Ok((file, metadata))
}

/// What an open file description allows, from its status flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenMode {
    /// Opened for reading (`O_RDONLY` or `O_RDWR`, not `O_PATH`).
    pub(crate) read: bool,
    /// Opened for writing (`O_WRONLY` or `O_RDWR`, not `O_PATH`).
    pub(crate) write: bool,
    /// Opened with `O_APPEND`, which the kernel refuses to map shared and
    /// writable.
    pub(crate) append: bool,
}

/// How `file` was opened (`fcntl(F_GETFL)`).
pub(crate) fn open_mode(file: &File) -> io::Result<OpenMode> {
    // SAFETY: the descriptor is borrowed for the duration of the call.
    let flags = check(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) })?;
    // An `O_PATH` descriptor names a file but can neither read nor write it.
    let usable = flags & libc::O_PATH == 0;
    let mode = flags & libc::O_ACCMODE;
    Ok(OpenMode {
        read: usable && matches!(mode, libc::O_RDONLY | libc::O_RDWR),
        write: usable && matches!(mode, libc::O_WRONLY | libc::O_RDWR),
        append: flags & libc::O_APPEND != 0,
    })
}

/// A file's identity: which inode on which device.
pub(crate) type FileId = (u64, u64);

/// The identity of the file behind `metadata`.
pub(crate) fn file_id(metadata: &Metadata) -> FileId {
    (metadata.dev(), metadata.ino())
}

/// Grows `file` from `from` to `to` bytes with disk blocks allocated, so that
/// writes through a mapping cannot later fail for lack of space (which would
/// be a SIGBUS). Falls back to a sparse `set_len` where allocation is not
/// supported.
pub(crate) fn grow(file: &File, from: u64, to: u64) -> io::Result<()> {
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
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOSYS)) => {
            file.set_len(to)
        }
        Err(e) => Err(e),
    }
}

/// A new anonymous memory object of `len` zeroed bytes, close-on-exec.
pub(crate) fn anonymous_file(len: u64) -> io::Result<File> {
    let name = c"mapview-anonymous";
    // SAFETY: `name` is a valid NUL-terminated string; flags are valid.
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: memfd_create just returned this descriptor; nothing else owns it.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.set_len(len)?;
    Ok(file)
}

/// The size of a virtual memory page.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// The machine's physical memory in bytes, if the system says.
pub(crate) fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    u64::try_from(pages).ok()?.checked_mul(page_size() as u64)
}

/// The page-aligned span that covers `len` bytes at `addr`.
fn page_span(addr: *const u8, len: usize) -> (*mut libc::c_void, usize) {
    let page = page_size();
    let start = addr as usize & !(page - 1);
    let end = (addr as usize + len).next_multiple_of(page);
    (start as *mut libc::c_void, end - start)
}

/// The whole pages inside `len` bytes at `addr`, if there are any.
fn whole_pages(addr: *const u8, len: usize) -> Option<(*mut libc::c_void, usize)> {
    let page = page_size();
    let start = (addr as usize).next_multiple_of(page);
    let end = (addr as usize + len) & !(page - 1);
    (start < end).then(|| (start as *mut libc::c_void, end - start))
}

/// Whether every page of `addr..addr + len` is in memory. Truthful for file
/// mappings only if this process owns the file or may write it (see
/// [`mincore_is_truthful`]); otherwise the kernel says "resident" for all.
///
/// `mincore` takes the memory-map lock for reading. Asking the file instead
/// (`cachestat`, Linux 6.5) avoids the lock but was worse where it matters:
/// over a file of 1.33x memory with 1024 streams, 63-174 polls of 10 ms or
/// more and a longest poll of 226-294 ms, against 11-67 and 31-67 ms with
/// `mincore` (three interleaved runs each), likely its bookkeeping of the
/// recently evicted pages it meets ahead of the readers.
///
/// # Safety
///
/// `addr..addr + len` must lie inside one live mapping.
pub(crate) unsafe fn is_resident(addr: *const u8, len: usize) -> io::Result<bool> {
    let (start, span) = page_span(addr, len);
    let mut pages = vec![0u8; span / page_size()];
    // SAFETY: the span lies in a live mapping (caller); `pages` holds one
    // byte per page of it.
    check(unsafe { libc::mincore(start, span, pages.as_mut_ptr().cast()) })?;
    Ok(pages.iter().all(|p| p & 1 == 1))
}

/// Drops the clean pages of `offset..offset + len` of `file` from the page
/// cache (`POSIX_FADV_DONTNEED`); dirty ones stay. It may start writing
/// dirty pages back on the way: call it off the async workers.
pub(crate) fn drop_cached(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "range too large",
        ));
    };
    // SAFETY: the descriptor is borrowed for the duration of the call.
    let ret =
        unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED) };
    // posix_fadvise returns the error number instead of setting errno.
    match ret {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Whether `mincore` tells the truth about `file`'s pages for this process:
/// only for the file's owner, a privileged process, or one that may write it.
pub(crate) fn mincore_is_truthful(file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let owner = file.metadata().map(|m| m.uid()).ok();
    if euid == 0 || owner == Some(euid) {
        return true;
    }
    let Ok(path) = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())) else {
        return false;
    };
    // SAFETY: `path` is a valid NUL-terminated string.
    unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::W_OK, libc::AT_EACCESS) == 0 }
}

/// Starts reading exactly the pages of `addr..addr + len` into the page
/// cache (`MADV_WILLNEED`), without waiting. A fault on a file page that is
/// not cached reads around it instead, the device's whole read-ahead size
/// (often megabytes): right for a sequential reader, wasteful for a short
/// range. Advice only: failures are ignored.
///
/// # Safety
///
/// `addr..addr + len` must lie inside one live mapping.
pub(crate) unsafe fn will_need(addr: *const u8, len: usize) {
    let (start, span) = page_span(addr, len);
    // SAFETY: the span lies in a live mapping (caller); WILLNEED only starts
    // reading it in and changes no contents.
    unsafe { libc::madvise(start, span, libc::MADV_WILLNEED) };
}

/// Drops the page-table entries of the whole pages inside `addr..addr +
/// len` (`MADV_DONTNEED`), so that unmapping or writing them back later is
/// cheap; the partial pages at either end stay mapped. For a shared mapping
/// the contents stay in the file or shared memory (dirty pages are still
/// written back); for a private one its copy-on-write copies are discarded.
/// Advice only: failures are ignored.
///
/// # Safety
///
/// `addr..addr + len` must lie inside one live mapping whose private pages,
/// if any, no one reads again.
pub(crate) unsafe fn drop_page_tables(addr: *const u8, len: usize) {
    let Some((start, span)) = whole_pages(addr, len) else {
        return;
    };
    // SAFETY: the span lies in a live mapping (caller); for shared mappings
    // DONTNEED changes no contents, and the caller vouches that the private
    // copies it discards are not read again.
    unsafe { libc::madvise(start, span, libc::MADV_DONTNEED) };
}

/// Which populate advice to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Populate {
    /// Fault pages in for reading (`MADV_POPULATE_READ`).
    Read,
    /// Fault pages in writable, breaking copy-on-write (`MADV_POPULATE_WRITE`).
    Write,
}

/// Faults in the pages of `addr..addr + len` and fills their page tables,
/// blocking until the disk has delivered them: call it off the async
/// workers.
///
/// # Errors
///
/// `UnexpectedEof` if a page lies past the end of the file (the kernel says
/// `EFAULT` instead of raising `SIGBUS`).
///
/// # Safety
///
/// `addr..addr + len` must lie inside one live mapping.
pub(crate) unsafe fn populate(addr: *const u8, len: usize, how: Populate) -> io::Result<()> {
    let (start, span) = page_span(addr, len);
    let advice = match how {
        Populate::Read => libc::MADV_POPULATE_READ,
        Populate::Write => libc::MADV_POPULATE_WRITE,
    };
    loop {
        // SAFETY: the span lies in a live mapping (caller); populate advice
        // does not change its contents.
        match check(unsafe { libc::madvise(start, span, advice) }) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the mapped file ends before the mapping (truncated?)",
                ))
            }
            Err(e) => return Err(e),
        }
    }
}

/// Starts writing the dirty pages of `offset..offset + len` of `file` to the
/// disk (`sync_file_range(WRITE)`), and with `wait`, waits until they are
/// written. Neither is durable: no metadata, no disk-cache flush. Blocking:
/// call it off the async workers.
pub(crate) fn write_back(file: &File, offset: u64, len: u64, wait: bool) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "range too large",
        ));
    };
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    loop {
        // SAFETY: the descriptor is borrowed for the duration of the call.
        match check(unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) }) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// While alive, the calling thread runs under a background policy
/// (`SCHED_BATCH` or `SCHED_IDLE`: see `paging::pacing::POLICY` for why).
/// Any thread may switch between `SCHED_OTHER` and those; dropping the
/// guard puts the thread's policy back. Threads under any other policy
/// (real-time ones) are left alone.
#[derive(Debug)]
pub(crate) struct BackgroundScheduling {
    switched: bool,
}

/// The calling thread's scheduling policy.
fn policy() -> libc::c_int {
    // SAFETY: pid 0 is the calling thread.
    unsafe { libc::sched_getscheduler(0) }
}

/// Sets the calling thread's scheduling policy (priority 0: the policies
/// this switches between have no other).
fn set_policy(policy: libc::c_int) -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid struct.
    unsafe { libc::sched_setscheduler(0, policy, &param) == 0 }
}

impl BackgroundScheduling {
    /// Switches the calling thread to `policy` if it runs under
    /// `SCHED_OTHER`.
    pub(crate) fn enter(policy: libc::c_int) -> Self {
        let switched = self::policy() == libc::SCHED_OTHER && set_policy(policy);
        Self { switched }
    }
}

impl Drop for BackgroundScheduling {
    fn drop(&mut self) {
        if self.switched {
            set_policy(libc::SCHED_OTHER);
        }
    }
}

/// The calling process's effective user id: the owner of the files and
/// shared memory it creates.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::{policy, set_policy, BackgroundScheduling};

    #[test]
    fn background_scheduling_lasts_as_long_as_its_guard() {
        std::thread::spawn(|| {
            assert_eq!(policy(), libc::SCHED_OTHER);
            let batch = BackgroundScheduling::enter(libc::SCHED_BATCH);
            assert_eq!(policy(), libc::SCHED_BATCH);
            drop(batch);
            assert_eq!(policy(), libc::SCHED_OTHER);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn background_scheduling_leaves_other_policies_alone() {
        std::thread::spawn(|| {
            assert!(set_policy(libc::SCHED_IDLE));
            drop(BackgroundScheduling::enter(libc::SCHED_BATCH));
            assert_eq!(policy(), libc::SCHED_IDLE);
        })
        .join()
        .unwrap();
    }
}
