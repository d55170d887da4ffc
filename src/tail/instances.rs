//! Idle inotify instances, handed from dropped tails to new ones.
//!
//! Closing an inotify instance waits in the kernel until its watches are torn
//! down (an SRCU grace period, 5-15 ms: `strace -T` shows it on `close`). A
//! tail that closed its instance on drop stalled its async worker that long,
//! and closing on a background thread instead leaves instances open for a
//! while, of which a user may have only `fs.inotify.max_user_instances`
//! (128 by default). So a dropped tail removes its watches (which does not
//! wait) and leaves its instance here for the next tail:
//!
//! ```text
//!   Tail::follow ── take() ──> idle instance, or a new one
//!   drop(Tail)   ── remove watches, give_back() ──> idle (at most KEEP_IDLE;
//!                                                   beyond, closed off-worker)
//! ```

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Mutex, PoisonError};

use tokio::runtime::Handle;

use crate::sys::inotify;

/// How many idle instances are kept at most.
const KEEP_IDLE: usize = 8;

static IDLE: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

/// An inotify instance without watches or queued events: an idle one, or a
/// new one.
pub(crate) fn take() -> io::Result<OwnedFd> {
    let idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner).pop();
    match idle {
        Some(fd) => {
            // The IN_IGNORED events of the watches its last user removed.
            inotify::drain(&fd)?;
            Ok(fd)
        }
        None => inotify::inotify(),
    }
}

/// Keeps `fd`, whose watches the caller removed, for the next tail; beyond
/// [`KEEP_IDLE`], closes it on the blocking pool (or here, outside a
/// runtime, where no async worker waits).
pub(crate) fn give_back(fd: OwnedFd) {
    let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
    if idle.len() < KEEP_IDLE {
        idle.push(fd);
        return;
    }
    drop(idle);
    if let Ok(runtime) = Handle::try_current() {
        // If the runtime is shutting down, the closure is dropped unrun,
        // which closes the descriptor right there: nothing leaks.
        drop(runtime.spawn_blocking(move || drop(fd)));
    }
}
