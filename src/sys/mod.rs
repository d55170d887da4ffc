//! The raw system calls that memmap2 and std lack, behind small safe functions.
//!
//! The rest of the crate calls these and never `libc` directly. Linux is the
//! only platform so far, and other targets stop at the `compile_error!`
//! below rather than build a crate whose promises (no `SIGBUS`, no stall)
//! they cannot keep. A port adds its own files here with the same function
//! names: on Windows, shared memory is a named section object, which already
//! has the "gone with the last handle" lifetime.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "mapview is built and tested on Linux only so far; a port adds its platform calls under src/sys"
);

pub(crate) mod inotify;
mod lent;
#[cfg(feature = "http")]
mod openat2;
mod sigbus;
mod socket;
mod unix;

#[cfg(feature = "http")]
pub(crate) use openat2::{openat2, Resolve};
pub(crate) use sigbus::{guarded, guarded_copy, guarded_touch, truncated, Cover, Guarded};
pub(crate) use socket::send_nowait;
#[cfg(feature = "http")]
pub(crate) use socket::{send_file, send_vectored};
pub(crate) use unix::*;
