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
    pub(crate) drop_behind: bool,
    /// How much of its range the stream maps at once; `None`: derived
    /// from the read-ahead (see `stream::windows`).
    pub(crate) map_window: Option<u64>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            read_ahead: 2 << 20,
            max_read_ahead: 32 << 20,
            dirty_limit: 64 << 20,
            drop_behind: false,
            map_window: None,
        }
    }
}

impl StreamOptions {
    /// The defaults: a 2 MiB read-ahead window that may grow to 32 MiB, and
    /// at most 64 MiB of dirty bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use mapview::StreamOptions;
    ///
    /// let defaults = StreamOptions::new()
    ///     .read_ahead(2 << 20)
    ///     .max_read_ahead(32 << 20)
    ///     .dirty_limit(64 << 20);
    /// assert_eq!(StreamOptions::new(), defaults);
    /// assert_eq!(StreamOptions::new(), StreamOptions::default());
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use mapview::StreamOptions;
    ///
    /// // A reader known to read far: start with an 8 MiB window.
    /// let options = StreamOptions::new().read_ahead(8 << 20);
    /// assert_ne!(options, StreamOptions::new());
    /// // A window above the maximum (32 MiB by default) raises the maximum.
    /// let wide = StreamOptions::new().read_ahead(64 << 20);
    /// assert_eq!(wide, StreamOptions::new().max_read_ahead(64 << 20).read_ahead(64 << 20));
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_ahead(mut self, bytes: u64) -> Self {
        self.read_ahead = bytes;
        self.max_read_ahead = self.max_read_ahead.max(bytes);
        self
    }

    /// The largest the read-ahead window grows to, in bytes; a value below
    /// the initial window ([`read_ahead`](StreamOptions::read_ahead)) lowers
    /// it too. As there, the stream uses at least one page and at most the
    /// length of its range.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use mapview::StreamOptions;
    ///
    /// // Many streams at once: at most 4 MiB ahead of each reader.
    /// let options = StreamOptions::new().max_read_ahead(4 << 20);
    /// assert_ne!(options, StreamOptions::new());
    /// // A maximum below the window (2 MiB by default) lowers the window.
    /// let narrow = StreamOptions::new().max_read_ahead(1 << 20);
    /// assert_eq!(narrow, StreamOptions::new().read_ahead(1 << 20).max_read_ahead(1 << 20));
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_read_ahead(mut self, bytes: u64) -> Self {
        self.max_read_ahead = bytes;
        self.read_ahead = self.read_ahead.min(bytes);
        self
    }

    /// The most bytes a writing stream keeps dirty (written, not yet on the
    /// disk). Writeback starts at a quarter of it; at the limit,
    /// `poll_write` returns `Pending` until writeback frees room. Applies
    /// to file-backed, read-write maps.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use tokio::io::AsyncWriteExt;
    ///
    /// let dir = tempfile::tempdir()?;
    /// // SAFETY: this program is the only user of the new file.
    /// let map = unsafe { mapview::MappedFile::create(dir.path().join("out.bin"), 4 << 20)? };
    /// let options = mapview::StreamOptions::new().dirty_limit(1 << 20);
    /// let mut stream = map.stream_with(.., &options)?;
    /// for _ in 0..4 {
    ///     stream.write_all(&vec![1; 1 << 20]).await?;
    ///     assert!(stream.stats().dirty_bytes <= 1 << 20);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn dirty_limit(mut self, bytes: u64) -> Self {
        self.dirty_limit = bytes.max(1);
        self
    }

    /// For data read once, larger than memory: also drop the pages the
    /// stream has read from the page cache (`POSIX_FADV_DONTNEED`, the case
    /// nginx serves with `directio`), not only from the stream's mapping.
    /// Off by default: other readers of the file may want them.
    ///
    /// Pages are dropped in steps of 8 MiB behind the cursor, off the async
    /// workers, and only while no zero-copy `Bytes` of the stream is alive.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use tokio::io::AsyncReadExt;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("backup.tar");
    /// std::fs::write(&path, vec![1u8; 1 << 20])?;
    /// // SAFETY: this program is the only user of the file.
    /// let map = unsafe { mapview::MappedFile::open(&path)? };
    /// let options = mapview::StreamOptions::new().drop_behind(true);
    /// let mut copy = Vec::new();
    /// map.stream_with(.., &options)?.read_to_end(&mut copy).await?;
    /// assert_eq!(copy.len(), 1 << 20);
    /// # Ok(())
    /// # }
    /// ```
    pub fn drop_behind(mut self, drop: bool) -> Self {
        self.drop_behind = drop;
        self
    }

    /// How many bytes of its range the stream maps at once (rounded up to
    /// whole pages); by default several of its largest read-ahead windows,
    /// at least 64 MiB. A hook for the crate's own tests (small windows, so
    /// that reads cross their boundaries), outside the documented API: it
    /// may change in any release.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = mapview::StreamOptions::new().map_window(1 << 20);
    /// assert_ne!(options, mapview::StreamOptions::new());
    /// ```
    #[doc(hidden)]
    pub fn map_window(mut self, bytes: u64) -> Self {
        self.map_window = Some(bytes);
        self
    }
}
