//! [`TailOptions`]: how a [`Tail`] starts following its file.

use std::io::{self, SeekFrom};
use std::path::Path;

use super::Tail;

/// Settings for following a file, from [`Tail::options`].
///
/// Defaults: a missing file is `NotFound`, as with [`Tail::follow`]. Each
/// setting takes and returns the builder, as [`StreamOptions`](crate::StreamOptions)'s do.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let options = mapview::Tail::options().wait_for_file(true);
/// // Both wait for their files; one builder can start many tails.
/// let access = options.follow(dir.path().join("access.log"), std::io::SeekFrom::Start(0))?;
/// let errors = options.follow(dir.path().join("error.log"), std::io::SeekFrom::Start(0))?;
/// assert_eq!((access.position(), errors.position()), (0, 0));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct TailOptions {
    wait_for_file: bool,
}

impl TailOptions {
    /// Whether to wait for the file when there is none at the path yet, as
    /// `tail -F` does, instead of failing with `NotFound`. The file is read
    /// from its start when it appears (`start` applies only to a file that
    /// is there when following begins). The directory is watched with
    /// inotify, so the file's first bytes arrive as soon as they are written.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let missing = dir.path().join("not-yet.log");
    /// let refused = mapview::Tail::options().follow(&missing, std::io::SeekFrom::End(0));
    /// assert_eq!(refused.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    /// let waiting = mapview::Tail::options()
    ///     .wait_for_file(true)
    ///     .follow(&missing, std::io::SeekFrom::End(0))?;
    /// # drop(waiting);
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_for_file(mut self, wait: bool) -> Self {
        self.wait_for_file = wait;
        self
    }

    /// Starts following the file at `path` from `start`, as
    /// [`Tail::follow`] does, with these settings. Call it inside a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// As for [`Tail::follow`], except that with
    /// [`wait_for_file`](TailOptions::wait_for_file) a missing file is no
    /// error.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use tokio::io::AsyncBufReadExt;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("later.log");
    /// let tail = mapview::Tail::options()
    ///     .wait_for_file(true)
    ///     .follow(&path, std::io::SeekFrom::End(0))?;
    /// std::fs::write(&path, "here at last\n")?;
    /// let mut lines = tail.lines();
    /// assert_eq!(lines.next_line().await?.as_deref(), Some("here at last"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn follow(&self, path: impl AsRef<Path>, start: SeekFrom) -> io::Result<Tail> {
        Tail::new(path.as_ref(), start, self.wait_for_file)
    }
}
