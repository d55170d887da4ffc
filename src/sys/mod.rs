//! The raw system calls that memmap2 and std lack, behind small safe functions.
//!
//! The rest of the crate calls these and never `libc` directly. Each platform
//! gets one file; only Unix exists so far. A Windows port adds `windows.rs`
//! with the same function names (shared memory there is a named section
//! object, which already has the "gone with the last handle" lifetime).

#[cfg(target_os = "linux")]
pub(crate) mod inotify;
#[cfg(target_os = "linux")]
mod sigbus;
#[cfg(unix)]
mod socket;
#[cfg(unix)]
mod unix;

#[cfg(target_os = "linux")]
pub(crate) use sigbus::{guarded, guarded_copy, guarded_touch, Guarded};
#[cfg(unix)]
pub(crate) use socket::send_nowait;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(not(target_os = "linux"))]
compile_error!(
    "mapview is built and tested on Linux only so far; a port adds its platform calls \
     under src/sys (unix.rs already keeps the Linux-only ones behind cfg)"
);
