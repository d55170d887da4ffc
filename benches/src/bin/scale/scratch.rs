//! The benchmark's file: made cold, and removed when the benchmark ends,
//! whether it returns, fails, or is interrupted.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::cold_file;

/// The file and its directory, for the signal handler to remove.
static TO_REMOVE: OnceLock<(CString, CString)> = OnceLock::new();

/// The signals after which the file is removed: Ctrl-C, `kill`, a closed
/// terminal.
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// A cold file in a directory of its own under the system temp dir, removed
/// with it on drop (on return and on error: `TempDir` removes what it
/// holds) and on the [`SIGNALS`].
pub struct ScratchFile {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl ScratchFile {
    /// Makes a cold file of `len` bytes. There is one in a process.
    pub fn create(len: u64) -> io::Result<ScratchFile> {
        let dir = tempfile::Builder::new().prefix("mapview-scale").tempdir()?;
        let path = dir.path().join("data.bin");
        remove_on_signals(&path, dir.path())?;
        // The directory goes on drop, also when the making fails.
        let file = ScratchFile { path, _dir: dir };
        cold_file::make_file(&file.path, len)?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn remove_on_signals(file: &Path, dir: &Path) -> io::Result<()> {
    let c_path = |path: &Path| CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other);
    TO_REMOVE
        .set((c_path(file)?, c_path(dir)?))
        .map_err(|_| io::Error::other("there is one scratch file in a process"))?;
    for signal in SIGNALS {
        // SAFETY: the handler only makes async-signal-safe calls (unlink,
        // rmdir, signal, raise) on strings set before it was installed.
        let previous = unsafe {
            libc::signal(
                signal,
                remove_and_die as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
        if previous == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Removes the file and its directory, then dies of the signal as it would
/// have without the handler.
extern "C" fn remove_and_die(signal: libc::c_int) {
    if let Some((file, dir)) = TO_REMOVE.get() {
        // SAFETY: NUL-terminated paths that live in a static.
        unsafe {
            libc::unlink(file.as_ptr());
            libc::rmdir(dir.as_ptr());
        }
    }
    // SAFETY: restores the default action and raises the signal again, so
    // the process ends as the sender meant.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}
