//! Named shared memory with a crash-safe lifetime.
//!
//! POSIX shared-memory objects live until `shm_unlink`, even after every
//! process that used them died. mapview counts holders with `flock`, which
//! the kernel releases when a process dies:
//!
//! ```text
//!   holder A ──LOCK_SH──┐
//!   holder B ──LOCK_SH──┼──> /dev/shm/NAME
//!   holder C ──LOCK_SH──┘
//!
//!   on drop: LOCK_UN, then LOCK_EX|LOCK_NB
//!            won  -> nobody else holds it: unlink NAME (if NAME is still us)
//!            lost -> someone else still holds it: just close
//! ```
//!
//! A creator takes `LOCK_EX` on the object it made with `O_EXCL`, sizes it,
//! then downgrades to `LOCK_SH`. Anyone who finds the name unlocked (all
//! holders died, or a creator has not locked yet) may reap it. Because lock
//! conversions are not atomic, every party re-checks after each lock it takes
//! that the name still points at the inode it locked, and starts over if not.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::sys::{self, Flock, ShmOpen};

/// How often a create or open starts over after losing a race, at most.
const ATTEMPTS: usize = 64;

/// Longest accepted name, in bytes.
const MAX_NAME_LEN: usize = 200;

/// Checks a shared-memory name: letters, digits, `-`, `_`, `.`; 1 to 200
/// bytes; not `.` or `..`.
pub(crate) fn validate_name(name: &str) -> io::Result<()> {
    let valid_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name == "."
        || name == ".."
        || !name.bytes().all(valid_char)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "invalid shared memory name {name:?}: use 1 to {MAX_NAME_LEN} letters, \
                 digits, '-', '_' or '.' (not \".\" or \"..\")"
            ),
        ));
    }
    Ok(())
}

/// Whether `name` currently refers to the same object as `file`.
fn still_named(name: &str, file: &File) -> io::Result<bool> {
    let named = match sys::shm_open(name, ShmOpen::Inspect) {
        Ok(named) => named.metadata()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let ours = file.metadata()?;
    Ok(named.dev() == ours.dev() && named.ino() == ours.ino())
}

/// Unlinks `name` if `file` holds the only lock on it. `file` must not hold
/// a lock of its own when this is called.
fn reap_if_unlocked(name: &str, file: &File) -> io::Result<bool> {
    if sys::flock(file, Flock::TryExclusive)? && still_named(name, file)? {
        match sys::shm_unlink(name) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

fn lost_races(name: &str) -> io::Error {
    io::Error::other(format!(
        "shared memory {name:?} kept changing under concurrent create/open calls"
    ))
}

/// Creates the named object with `len` zeroed bytes and registers this
/// process as a holder. `AlreadyExists` if a live object has that name.
pub(crate) fn create(name: &str, len: u64) -> io::Result<File> {
    validate_name(name)?;
    for _ in 0..ATTEMPTS {
        let file = match sys::shm_open(name, ShmOpen::CreateNew) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if reap_stale(name)? {
                    continue;
                }
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("shared memory {name:?} already exists"),
                ));
            }
            Err(e) => return Err(e),
        };
        sys::flock(&file, Flock::Exclusive)?;
        if !still_named(name, &file)? {
            continue; // reaped before we locked it: start over
        }
        if let Err(e) = file.set_len(len) {
            let _ = sys::shm_unlink(name);
            return Err(e);
        }
        sys::flock(&file, Flock::Shared)?;
        if still_named(name, &file)? {
            return Ok(file);
        }
    }
    Err(lost_races(name))
}

/// Reaps a leftover object of this user that no live process holds.
/// Returns whether the name is now free to create; another user's object is
/// never reaped.
fn reap_stale(name: &str) -> io::Result<bool> {
    match sys::shm_open(name, ShmOpen::Existing) {
        Ok(file) if file.metadata()?.uid() != sys::effective_uid() => Ok(false),
        Ok(file) => reap_if_unlocked(name, &file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

/// Whether the object is private to this process's user: owned by its
/// effective uid, with no group or other permission bits. An object that
/// another user made (or may write) under a name we expect is a squatter's:
/// it could read or forge what we exchange through it.
fn is_private(meta: &Metadata) -> bool {
    meta.uid() == sys::effective_uid() && meta.permissions().mode() & 0o077 == 0
}

fn not_private(name: &str, meta: &Metadata) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "shared memory {name:?} is owned by uid {} with mode {:o}; only objects of \
             uid {} with mode 0600 (or stricter) are opened",
            meta.uid(),
            meta.permissions().mode() & 0o7777,
            sys::effective_uid()
        ),
    )
}

/// Opens the named object made by any process and registers this process as
/// a holder. `NotFound` if there is none, or only a leftover of dead holders
/// (which this call reaps); `PermissionDenied` if it is not private to this
/// user (see [`is_private`]); `InvalidData` if a live holder left it
/// empty (it was not made by `create`, which sizes it before anyone can
/// open it).
pub(crate) fn open(name: &str) -> io::Result<File> {
    validate_name(name)?;
    for _ in 0..ATTEMPTS {
        let file = match sys::shm_open(name, ShmOpen::Existing) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no shared memory named {name:?}"),
                ))
            }
            Err(e) => return Err(e),
        };
        // Never reap or lock another user's object.
        let meta = file.metadata()?;
        if meta.uid() != sys::effective_uid() {
            return Err(not_private(name, &meta));
        }
        if reap_if_unlocked(name, &file)? {
            continue; // a leftover, now gone: report NotFound on the next turn
        }
        // Waits while a creator holds its exclusive lock, which it keeps
        // until the object has its size.
        sys::flock(&file, Flock::Shared)?;
        if !still_named(name, &file)? {
            continue; // reaped or replaced meanwhile: look again
        }
        let meta = file.metadata()?;
        if !is_private(&meta) {
            return Err(not_private(name, &meta));
        }
        if meta.len() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("shared memory {name:?} has size 0: it was not made by mapview, or not initialised"),
            ));
        }
        return Ok(file);
    }
    Err(lost_races(name))
}

/// Deregisters this process as a holder of `file`, unlinking `name` if it was
/// the last one.
pub(crate) fn release(name: &str, file: &File) -> io::Result<()> {
    sys::flock(file, Flock::Unlock)?;
    reap_if_unlocked(name, file).map(drop)
}
