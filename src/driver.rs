//! [`with_drivers`]: registering with tokio's IO driver or timer as an
//! error, not a panic, when the runtime was built without them.
//!
//! tokio panics when a socket or file descriptor is registered on a runtime
//! without its IO driver (`Builder::enable_io`), or a timer is made on one
//! without its time driver (`enable_time`), and offers no way to ask first.
//! The library's constructors run such registrations through
//! [`with_drivers`], which turns that panic into an `io::Error` (the panic
//! message is still printed by the panic hook).

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `register`; if tokio panics because a driver is missing, an error of
/// kind `Other` that says `who` needs `drivers` (e.g. "IO", "IO and
/// timers") enabled in its runtime.
pub(crate) fn with_drivers<T>(
    who: &str,
    drivers: &str,
    register: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    catch_unwind(AssertUnwindSafe(register)).unwrap_or_else(|_| {
        Err(io::Error::other(format!(
            "{who} needs a tokio runtime with {drivers} enabled (Builder::enable_all)"
        )))
    })
}
