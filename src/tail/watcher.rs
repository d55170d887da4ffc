//! [`Watcher`]: wakes a [`Tail`](crate::Tail) when the followed file or its
//! directory changes (inotify), or after a timeout as a fallback for
//! filesystems that send no events.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::{sleep, Sleep};

use super::instances;
use crate::driver::with_drivers;
use crate::sys::inotify::{self, Watch};

/// How often to look at the file anyway, without an event.
const FALLBACK: Duration = Duration::from_millis(100);

/// The inotify instance and watches of a tail, plus its fallback timer.
#[derive(Debug)]
pub(crate) struct Watcher {
    inotify: Option<AsyncFd<OwnedFd>>,
    dir_watch: Option<i32>,
    file_watch: Option<i32>,
    timer: Pin<Box<Sleep>>,
}

impl Watcher {
    /// Watches `path` and its directory. Without inotify (or where a watch
    /// cannot be added) it falls back to the timer alone. Call it inside a
    /// tokio runtime.
    ///
    /// # Errors
    ///
    /// An error of kind `Other` if the runtime has no IO or timer driver
    /// (tokio panics then; the panic is caught here).
    pub(crate) fn new(path: &Path) -> io::Result<Self> {
        let register = || {
            let inotify = instances::take().ok().and_then(|fd| {
                // SAFETY: the AsyncFd owns `fd`, which stays open and the same
                // for its whole life.
                unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()
            });
            Ok((inotify, Box::pin(sleep(FALLBACK))))
        };
        let (inotify, timer) = with_drivers("Tail", "IO and timers", register)?;
        let mut watcher = Self {
            inotify,
            dir_watch: None,
            file_watch: None,
            timer,
        };
        if let Some(fd) = &watcher.inotify {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            watcher.dir_watch = inotify::add_watch(
                fd.get_ref(),
                dir.unwrap_or(Path::new(".")),
                Watch::Directory,
            )
            .ok();
        }
        watcher.watch_file(path);
        Ok(watcher)
    }

    /// Moves the file watch to whatever file is at `path` now.
    pub(crate) fn watch_file(&mut self, path: &Path) {
        let Some(fd) = &self.inotify else {
            return;
        };
        if let Some(wd) = self.file_watch.take() {
            inotify::remove_watch(fd.get_ref(), wd);
        }
        self.file_watch = inotify::add_watch(fd.get_ref(), path, Watch::File).ok();
    }

    /// `Ready` once something may have changed: an event arrived or the
    /// fallback timer fired.
    pub(crate) fn poll_change(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(fd) = &self.inotify {
            while let Poll::Ready(guard) = fd.poll_read_ready(cx) {
                let mut guard = guard?;
                let any = inotify::drain(fd.get_ref())?;
                guard.clear_ready();
                if any {
                    self.reset_timer();
                    return Poll::Ready(Ok(()));
                }
            }
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.reset_timer();
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }

    fn reset_timer(&mut self) {
        let deadline = tokio::time::Instant::now() + FALLBACK;
        self.timer.as_mut().reset(deadline);
    }
}

impl Drop for Watcher {
    /// Removes the watches and leaves the instance for the next tail (see
    /// `instances`): closing it here would stall the worker.
    fn drop(&mut self) {
        let Some(inotify) = self.inotify.take() else {
            return;
        };
        let fd = inotify.into_inner(); // deregistered from the reactor here
        for wd in [self.file_watch.take(), self.dir_watch.take()]
            .into_iter()
            .flatten()
        {
            inotify::remove_watch(&fd, wd);
        }
        instances::give_back(fd);
    }
}
