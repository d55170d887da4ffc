//! [`StreamOptions`]: the tuning knobs of a stream view.

/// Settings for [`MappedFile::stream_with`](crate::MappedFile::stream_with).
///
/// # Examples
///
/// ```
/// let options = mapview::StreamOptions::new().read_ahead(8 << 20);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    pub(crate) read_ahead: u64,
    pub(crate) max_read_ahead: u64,
    pub(crate) dirty_limit: u64,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            read_ahead: 2 << 20,
            max_read_ahead: 32 << 20,
            dirty_limit: 64 << 20,
        }
    }
}

impl StreamOptions {
    /// The defaults: a 2 MiB read-ahead window that may grow to 32 MiB, and
    /// at most 64 MiB of dirty bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The initial read-ahead window in bytes: how far ahead of the cursor
    /// the background task makes pages resident. It doubles each time the
    /// reader catches up with it, up to
    /// [`max_read_ahead`](StreamOptions::max_read_ahead); a value above that
    /// maximum raises the maximum to it.
    ///
    /// Any value is accepted: the stream uses at least one page and at most
    /// the length of its range (so `u64::MAX` means "the whole range").
    pub fn read_ahead(mut self, bytes: u64) -> Self {
        self.read_ahead = bytes;
        self.max_read_ahead = self.max_read_ahead.max(bytes);
        self
    }

    /// The largest the read-ahead window grows to, in bytes; a value below
    /// the initial window ([`read_ahead`](StreamOptions::read_ahead)) lowers
    /// it too. As there, the stream uses at least one page and at most the
    /// length of its range.
    pub fn max_read_ahead(mut self, bytes: u64) -> Self {
        self.max_read_ahead = bytes;
        self.read_ahead = self.read_ahead.min(bytes);
        self
    }

    /// The most bytes a writing stream keeps dirty (written, not yet on the
    /// disk). Writeback starts at a quarter of it; at the limit,
    /// `poll_write` returns `Pending` until writeback frees room. Applies
    /// to file-backed, read-write maps.
    pub fn dirty_limit(mut self, bytes: u64) -> Self {
        self.dirty_limit = bytes.max(1);
        self
    }
}
