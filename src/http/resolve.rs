//! From a request path to an open file that cannot lie outside the root.
//!
//! ```text
//!   "/a/%2e%2e/b" ─> segments (decoded; `..`, `/`, NUL refused: 403)
//!                 ─> openat2(root_fd, "a/b", RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
//!                    (or, without openat2: canonicalize, check the prefix, open,
//!                     and check where the opened file lies)
//!                 ─> a directory? its index.html, if enabled
//! ```

use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use http::StatusCode;

use crate::sys::{self, Resolve};

/// What a service serves.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// The tree under a directory; a directory's `index.html` if
    /// `index_html`.
    Dir { root: PathBuf, index_html: bool },
    /// One file, whatever the request path.
    File(PathBuf),
}

/// The file a request names, opened.
#[derive(Debug)]
pub(crate) struct Found {
    /// Its path (relative to the root for a directory), for its type and
    /// its precompressed siblings.
    pub(crate) path: PathBuf,
    pub(crate) file: RegularFile,
}

/// An open regular file and what `fstat` said of it when it was opened.
#[derive(Debug)]
pub(crate) struct RegularFile {
    pub(crate) file: File,
    pub(crate) metadata: Metadata,
}

/// Whether finding a file may wait on the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Any lookup: the caller is on the blocking pool.
    Allowed,
    /// Only lookups the kernel answers from its caches of names and inodes
    /// (`RESOLVE_CACHED`): the caller is an async worker. Others fail (so
    /// does everything where the kernel cannot tell: no `openat2`).
    Never,
}

impl Source {
    /// Finds and opens the regular file that `uri_path` names.
    pub(crate) fn find(&self, uri_path: &str, wait: Wait) -> Result<Found, StatusCode> {
        let (root, index_html) = match self {
            Source::File(path) => {
                let file = open_regular(path, None, wait).map_err(|e| status(&e))?;
                let path = path.clone();
                return Ok(Found { path, file });
            }
            Source::Dir { root, index_html } => (root, *index_html),
        };
        let mut path: PathBuf = path_segments(uri_path)?.into_iter().collect();
        let file = match open_regular(root, Some(&path), wait) {
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) && index_html => {
                path.push("index.html");
                open_regular(root, Some(&path), wait)
            }
            opened => opened,
        };
        let file = file.map_err(|e| status(&e))?;
        Ok(Found { path, file })
    }

    /// Opens `path` + `suffix` (a precompressed sibling): `None` if it is
    /// not a regular file, `Err` if that cannot be told without waiting.
    pub(crate) fn sibling(
        &self,
        path: &Path,
        suffix: &str,
        wait: Wait,
    ) -> Result<Option<RegularFile>, StatusCode> {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let opened = match self {
            Source::File(_) => open_regular(Path::new(&name), None, wait),
            Source::Dir { root, .. } => open_regular(root, Some(Path::new(&name)), wait),
        };
        match opened {
            Ok(file) => Ok(Some(file)),
            Err(e) if wait == Wait::Never && is_would_block(&e) => Err(status(&e)),
            Err(_) => Ok(None),
        }
    }
}

/// Whether a lookup failed because it would have waited (or the kernel
/// cannot tell).
fn is_would_block(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock
}

/// The status for a failure to find a file.
fn status(error: &io::Error) -> StatusCode {
    match error.raw_os_error() {
        // EXDEV: openat2 found the path leads out of the root; ELOOP: a
        // magic link, or a loop of symlinks.
        Some(libc::EXDEV | libc::ELOOP | libc::EACCES | libc::EPERM) => StatusCode::FORBIDDEN,
        Some(libc::ENOENT | libc::ENOTDIR | libc::EISDIR | libc::ENAMETOOLONG) => {
            StatusCode::NOT_FOUND
        }
        _ => match error.kind() {
            io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            io::ErrorKind::NotFound | io::ErrorKind::InvalidInput => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
    }
}

/// Opens a regular file for reading: `path` itself, or `relative` beneath
/// the directory `path`. `EISDIR` for a directory, `InvalidInput` for
/// anything else that is not a regular file (a FIFO is never waited on).
fn open_regular(path: &Path, relative: Option<&Path>, wait: Wait) -> io::Result<RegularFile> {
    let file = match (relative, wait) {
        (None, Wait::Allowed) => open_flags().open(path)?,
        (None, Wait::Never) => open_cached(None, path, false, Resolve::Anywhere)?,
        (Some(relative), wait) => open_beneath(path, relative, wait)?,
    };
    // `fstat` of an open file: its inode is in memory (a network file
    // system may still ask its server).
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    }
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(RegularFile { file, metadata })
}

/// Read-only; `O_NONBLOCK` so that opening a FIFO does not wait for a
/// writer (the flag does not matter for regular files).
fn open_flags() -> OpenOptions {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    options
}

/// Opens `path` from the kernel's caches only: `WouldBlock` for a lookup
/// that would wait on the disk, or where the kernel cannot tell.
fn open_cached(
    dir: Option<&File>,
    path: &Path,
    directory: bool,
    resolve: Resolve,
) -> io::Result<File> {
    sys::openat2(dir, path, directory, resolve, true)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::WouldBlock,
            "no openat2 with RESOLVE_CACHED here",
        )
    })
}

/// Opens `relative` beneath `root`: with `openat2`, the kernel refuses any
/// step out of `root` (`..`, absolute or escaping symlinks, magic links),
/// even one swapped in while it resolves.
fn open_beneath(root: &Path, relative: &Path, wait: Wait) -> io::Result<File> {
    // An empty path names the root itself.
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    if wait == Wait::Never {
        let dir = open_cached(None, root, true, Resolve::Anywhere)?;
        return open_cached(Some(&dir), relative, false, Resolve::Beneath);
    }
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(root)?;
    match sys::openat2(Some(&dir), relative, false, Resolve::Beneath, false)? {
        Some(file) => Ok(file),
        // No openat2 here (an old kernel, or a seccomp filter).
        None => open_checked(root, relative),
    }
}

/// The fallback without `openat2`: resolves every symlink, checks that the
/// result lies in the (resolved) root, opens it, and checks again where the
/// opened file is. A directory swapped for a symlink between the first
/// check and the open can change which file opens, but not where procfs
/// says that file lies: one outside the root is refused all the same.
/// Without procfs mounted nothing opens: the check fails closed.
fn open_checked(root: &Path, relative: &Path) -> io::Result<File> {
    let root = root.canonicalize()?;
    let path = root.join(relative).canonicalize()?;
    let outside = || io::Error::from_raw_os_error(libc::EXDEV);
    if !path.starts_with(&root) {
        return Err(outside());
    }
    let file = open_flags().open(path)?;
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    if !opened.starts_with(&root) {
        return Err(outside());
    }
    Ok(file)
}

/// The segments of a request path, percent-decoded: `.` and empty ones
/// dropped. 400 for a path that is not `/...` or a bad escape, 403 for a
/// `..` (even encoded) or a segment that decodes to something holding a
/// `/` (which `Path::join` would take as an absolute path) or a NUL.
pub(crate) fn path_segments(uri_path: &str) -> Result<Vec<OsString>, StatusCode> {
    let Some(rest) = uri_path.strip_prefix('/') else {
        return Err(StatusCode::BAD_REQUEST);
    };
    let mut segments = Vec::new();
    for raw in rest.split('/') {
        let segment = percent_decode(raw).ok_or(StatusCode::BAD_REQUEST)?;
        match &segment[..] {
            b"" | b"." => continue,
            b".." => return Err(StatusCode::FORBIDDEN),
            s if s.contains(&b'/') || s.contains(&0) => return Err(StatusCode::FORBIDDEN),
            _ => segments.push(OsString::from_vec(segment)),
        }
    }
    Ok(segments)
}

/// `%XX` escapes decoded; `None` for a malformed escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let mut digit = || char::from(bytes.next()?).to_digit(16);
            let high = digit()?;
            out.push((high * 16 + digit()?) as u8);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;

    use super::*;

    #[test]
    fn path_segments_refuse_dot_dot_and_encoded_slashes() {
        assert_eq!(path_segments("/a/./b//c").unwrap(), ["a", "b", "c"]);
        assert_eq!(path_segments("/a%20b").unwrap(), ["a b"]);
        assert_eq!(path_segments("/a/../b"), Err(StatusCode::FORBIDDEN));
        assert_eq!(path_segments("/%2e%2E"), Err(StatusCode::FORBIDDEN));
        assert_eq!(path_segments("/%2fetc"), Err(StatusCode::FORBIDDEN));
        assert_eq!(path_segments("/a%00"), Err(StatusCode::FORBIDDEN));
        assert_eq!(path_segments("/%4"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(path_segments("/%+1"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(path_segments("*"), Err(StatusCode::BAD_REQUEST));
    }

    /// root/{f, sub/g, in -> f, out -> ../secret, abs -> /.../secret}
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::fs::write(root.join("f"), "f").unwrap();
        std::fs::write(root.join("sub/g"), "g").unwrap();
        std::os::unix::fs::symlink("f", root.join("in")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("out")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("abs")).unwrap();
        dir
    }

    #[test]
    fn symlinks_that_lead_out_are_refused_by_both_resolvers() {
        let dir = tree();
        let root = dir.path().join("root");
        fn beneath(root: &Path, path: &Path) -> io::Result<File> {
            open_beneath(root, path, Wait::Allowed)
        }
        // From the caches only, a lookup may also give up (`WouldBlock`),
        // but never opens a file outside.
        for out in ["out", "abs", "sub/../../secret"] {
            assert!(open_beneath(&root, Path::new(out), Wait::Never).is_err());
        }
        for open in [beneath, open_checked] {
            assert!(open(&root, Path::new("sub/g")).is_ok());
            assert!(open(&root, Path::new("in")).is_ok());
            for out in ["out", "abs", "sub/../../secret"] {
                let error = open(&root, Path::new(out)).unwrap_err();
                assert_eq!(status(&error), StatusCode::FORBIDDEN, "{out}: {error}");
            }
            let missing = open(&root, Path::new("nope")).unwrap_err();
            assert_eq!(status(&missing), StatusCode::NOT_FOUND);
        }
    }

    #[test]
    fn the_fallback_never_opens_a_file_outside_while_a_symlink_is_swapped_in() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        let dir = tree();
        let root = dir.path().join("root");
        // root/race: a directory, or a symlink to one outside the root,
        // exchanged atomically back and forth.
        std::fs::create_dir(root.join("race")).unwrap();
        std::fs::write(root.join("race/f"), "inside").unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/f"), "outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("swap")).unwrap();
        let c = |name| CString::new(root.join(name).into_os_string().into_vec()).unwrap();
        let (race, swap) = (c("race"), c("swap"));
        let running = Arc::new(AtomicBool::new(true));
        let swapper = std::thread::spawn({
            let running = Arc::clone(&running);
            move || {
                while running.load(Ordering::Relaxed) {
                    // SAFETY: two valid C strings that outlive the call.
                    let ret = unsafe {
                        libc::renameat2(
                            libc::AT_FDCWD,
                            race.as_ptr(),
                            libc::AT_FDCWD,
                            swap.as_ptr(),
                            libc::RENAME_EXCHANGE,
                        )
                    };
                    assert_eq!(ret, 0, "{}", io::Error::last_os_error());
                }
            }
        });
        for _ in 0..20_000 {
            if let Ok(file) = open_checked(&root, Path::new("race/f")) {
                assert_eq!(io::read_to_string(file).unwrap(), "inside");
            }
        }
        running.store(false, Ordering::Relaxed);
        swapper.join().unwrap();
    }

    #[test]
    fn a_directory_is_found_through_its_index_only_when_enabled() {
        let dir = tree();
        std::fs::write(dir.path().join("root/sub/index.html"), "i").unwrap();
        let root = dir.path().join("root");
        let with = Source::Dir {
            root: root.clone(),
            index_html: true,
        };
        assert_eq!(
            with.find("/sub/", Wait::Allowed).unwrap().path,
            Path::new("sub/index.html")
        );
        let without = Source::Dir {
            root,
            index_html: false,
        };
        assert_eq!(
            without.find("/sub", Wait::Allowed).unwrap_err(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            without.find("/", Wait::Allowed).unwrap_err(),
            StatusCode::NOT_FOUND
        );
    }
}
