//! Copies in and out of mappings that survive the file being truncated.
//!
//! When a file shrinks under a mapping, touching a page past the new end
//! raises `SIGBUS`, even if the page was resident a moment before, and the
//! default action kills the process. [`guarded_copy`] marks the range it
//! copies from or to in a thread-local; a process-wide `SIGBUS` handler that
//! sees a fault inside the marked range maps a zero page over the faulting
//! page (with a raw `mmap` syscall, which is async-signal-safe), records the
//! fault and returns, so the copy runs to its end and then reports
//! `UnexpectedEof`. Faults anywhere else go to the handler that was installed
//! before ours, or kill the process as they would have without us.
//!
//! ```text
//!   guarded_copy(dst, src, len)          SIGBUS at addr
//!     GUARD = src..src+len  ───────────>  addr in GUARD? ── no ──> previous handler
//!     memcpy ... fault ... resumes            │ yes
//!     GUARD = empty                            mmap(zero page, MAP_FIXED); FAULTED = true
//!     FAULTED? -> Err(UnexpectedEof)
//! ```
//!
//! The zero page stays in the mapping: whoever sees the error must stop using
//! that mapping (the stream views mark their region as poisoned).
//!
//! Memory that the library lends out (zero-copy `Bytes`, `fill_buf`
//! slices) is read by user code, outside any guarded copy. A [`Cover`] enters
//! such a mapping in a process-wide table ([`lent`](super::lent)) while it
//! lives; a fault at an address in a covered mapping gets a zero page too,
//! the table records the mapping as poisoned, and the owner of the mapping
//! reports `UnexpectedEof` the next time it looks ([`Cover::is_poisoned`]):
//!
//! ```text
//!   SIGBUS at addr ── in this thread's GUARD? ── yes ──> zero page; FAULTED
//!                          │ no
//!                     in a covered mapping? ──── yes ──> zero page; poisoned
//!                          │ no
//!                     previous handler
//! ```

use std::cell::Cell;
use std::io;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{compiler_fence, AtomicUsize, Ordering};
use std::sync::Once;

use super::lent::Table;

thread_local! {
    // Const-initialised `Copy` cells without destructors: reading them is a
    // plain TLS access, which is safe inside a signal handler.
    static GUARD_START: Cell<usize> = const { Cell::new(0) };
    static GUARD_END: Cell<usize> = const { Cell::new(0) };
    static FAULTED: Cell<bool> = const { Cell::new(false) };
}

/// The page size, read once before the handler is installed.
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);

/// The `SIGBUS` action that was in place before ours, written once before
/// ours is installed and only read afterwards.
static mut PREVIOUS: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();

static INSTALL: Once = Once::new();

/// How many mappings can be covered at once. A slot is 32 bytes (512 KiB
/// in all, of zero pages until used); a process that lends out more
/// mappings at once than this gets `None` from [`Cover::new`] and copies
/// instead. An HTTP server's file cache holds a mapping per file, which
/// stays covered while cached: room for 16,384 files. The `SIGBUS` handler
/// scans the table, tens of microseconds, only when a page is lost.
const COVER_SLOTS: usize = 16_384;

/// The covered mappings, read by the handler.
static COVERED: Table<COVER_SLOTS> = Table::new();

fn install_handler() -> io::Result<()> {
    let mut result = Ok(());
    INSTALL.call_once(|| result = install_handler_once());
    result
}

fn install_handler_once() -> io::Result<()> {
    PAGE_SIZE.store(super::page_size(), Ordering::Relaxed);
    // SAFETY: a zeroed sigaction is a valid value to fill in; `sa_mask` is
    // initialised with sigemptyset before use. `PREVIOUS` is written here
    // exactly once, inside `Once`, before the handler that reads it exists.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
        libc::sigemptyset(&mut action.sa_mask);
        let previous = &raw mut PREVIOUS;
        if libc::sigaction(libc::SIGBUS, &action, previous.cast::<libc::sigaction>()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

extern "C" fn on_sigbus(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel hands a valid siginfo_t to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let inside = GUARD_START.with(Cell::get) <= addr && addr < GUARD_END.with(Cell::get);
    if inside && map_zero_page(addr) {
        FAULTED.with(|f| f.set(true));
        return;
    }
    // Poisoned first: the owner then never trusts the zero page as data.
    if COVERED.poison_at(addr) && map_zero_page(addr) {
        return;
    }
    // SAFETY: PREVIOUS was fully written before this handler was installed.
    let previous = unsafe { &*(&raw const PREVIOUS).cast::<libc::sigaction>() };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction
        // runs again and the kernel delivers SIGBUS with its usual effect.
        // SAFETY: restoring a default disposition; a zeroed mask is valid.
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGBUS, &default, ptr::null_mut());
        }
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it
        // has this signature and expects these arguments.
        let chained: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        chained(signal, info, context);
    } else {
        // SAFETY: a plain handler installed without SA_SIGINFO.
        let chained: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        chained(signal);
    }
}

/// A mapping covered by the `SIGBUS` handler while this lives: a lost page
/// in it becomes a zero page and the mapping is poisoned, instead of the
/// process being killed.
#[derive(Debug)]
pub(crate) struct Cover {
    slot: usize,
}

impl Cover {
    /// Covers `start..start + len`. `None` if every slot of the table is
    /// taken (or the handler could not be installed): the caller must then
    /// not lend the memory out.
    ///
    /// # Safety
    ///
    /// `start..start + len` (`len > 0`) must be a mapping the caller owns,
    /// mapped before this call and unmapped only after the `Cover` is
    /// dropped: the handler maps zero pages over faulting pages in it.
    pub(crate) unsafe fn new(start: *const u8, len: usize) -> Option<Self> {
        install_handler().ok()?;
        let slot = COVERED.claim(start as usize, len)?;
        Some(Self { slot })
    }

    /// Whether a page of the mapping was lost (it reads as zeros now).
    pub(crate) fn is_poisoned(&self) -> bool {
        COVERED.is_poisoned(self.slot)
    }
}

impl Drop for Cover {
    fn drop(&mut self) {
        // Before the mapping is unmapped (the contract of `new`). A handler
        // that runs meanwhile for a fault in this mapping cannot exist: the
        // faulting reader would hold a borrow of the memory, and so of its
        // owner, which is being dropped. A handler for a fault elsewhere that
        // reads this slot while it changes sees its sequence number move, and
        // skips it.
        COVERED.release(self.slot);
    }
}

/// Replaces the page holding `addr` with a private zero page. Only raw
/// syscalls: this runs inside the signal handler.
fn map_zero_page(addr: usize) -> bool {
    let page = addr & !(PAGE_SIZE.load(Ordering::Relaxed) - 1);
    // SAFETY: the page lies inside a mapping that the interrupted copy owns,
    // or that a live `Cover` covers (checked by the caller), and whose owner
    // stops trusting its contents (the copy fails, the cover is poisoned);
    // replacing it with anonymous memory keeps the address valid for the
    // rest of the access.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mmap,
            page,
            PAGE_SIZE.load(Ordering::Relaxed),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    ret as usize == page
}

/// Which side of a [`guarded_copy`] lies in a mapping that may lose pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guarded {
    /// Copying out of a mapping.
    Source,
    /// Copying into a mapping.
    Destination,
}

/// Runs `access`, which touches memory only inside `start..start + len`
/// (and memory that cannot fault), with a `SIGBUS` there absorbed: the page
/// is replaced by zeros and the result is `UnexpectedEof`.
///
/// # Safety
///
/// `start..start + len` must lie inside a live mapping owned by the caller.
pub(crate) unsafe fn guarded<T>(
    start: usize,
    len: usize,
    access: impl FnOnce() -> T,
) -> io::Result<T> {
    install_handler()?;
    GUARD_START.with(|g| g.set(start));
    GUARD_END.with(|g| g.set(start + len));
    FAULTED.with(|f| f.set(false));
    compiler_fence(Ordering::SeqCst);
    let value = access();
    compiler_fence(Ordering::SeqCst);
    GUARD_END.with(|g| g.set(0));
    GUARD_START.with(|g| g.set(0));
    if FAULTED.with(Cell::get) {
        return Err(truncated());
    }
    Ok(value)
}

/// The error for bytes of a mapping that a truncation of the file took away.
pub(crate) fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the mapped file was truncated under the mapping",
    )
}

/// Copies `len` bytes from `src` to `dst`, where the `guarded` side lies in a
/// file mapping that may have been truncated.
///
/// # Errors
///
/// `UnexpectedEof` if a page of the guarded range was gone; the bytes copied
/// from it are zeros then, and the page is now anonymous memory.
///
/// # Safety
///
/// `src` must be valid for reads and `dst` for writes of `len` bytes (apart
/// from `SIGBUS` faults inside the guarded range), and they must not overlap.
pub(crate) unsafe fn guarded_copy(
    dst: *mut u8,
    src: *const u8,
    len: usize,
    guarded: Guarded,
) -> io::Result<()> {
    let start = match guarded {
        Guarded::Source => src as usize,
        Guarded::Destination => dst as usize,
    };
    // SAFETY: the caller guarantees both ranges are valid and disjoint; a
    // SIGBUS inside the guarded range is absorbed by the handler.
    unsafe { self::guarded(start, len, || ptr::copy_nonoverlapping(src, dst, len)) }
}

/// Reads one byte of every page of `addr..addr + len`, so that whatever a
/// first touch of those pages costs is paid by the calling thread.
///
/// # Errors
///
/// `UnexpectedEof` if a page was gone (the file was truncated); that page is
/// anonymous zeros now.
///
/// # Safety
///
/// `addr..addr + len` must lie inside one live mapping that is readable.
pub(crate) unsafe fn guarded_touch(addr: *const u8, len: usize) -> io::Result<()> {
    let page = super::page_size();
    // Bytes one page apart from the first, and the last: every page of the
    // range holds one of them.
    let offsets = (0..len).step_by(page).chain(len.checked_sub(1));
    let touch = || {
        for offset in offsets {
            // SAFETY: `offset < len`, inside the mapping (caller); a SIGBUS
            // there is absorbed by the guard.
            unsafe { ptr::read_volatile(addr.add(offset)) };
        }
    };
    // SAFETY: the range lies inside a live mapping (caller).
    unsafe { guarded(addr as usize, len, touch) }
}
