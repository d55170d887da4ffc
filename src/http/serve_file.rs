//! [`ServeFile`]: a tower service serving one file.

use std::convert::Infallible;
use std::path::PathBuf;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use tower_service::Service;

use super::body::ResponseBody;
use super::future::ResponseFuture;
use super::serve_dir::ServeDir;

/// A tower service serving one file for every request path, shaped like
/// tower-http's `ServeFile`, with the same HTTP semantics as
/// [`ServeDir`]; a missing file gets 404.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use mapview::http::ServeFile;
/// use tower_service::Service;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("robots.txt");
/// std::fs::write(&path, "User-agent: *\n")?;
/// let mut robots = ServeFile::new(&path);
///
/// let request = http::Request::head("/robots.txt").body(()).unwrap();
/// let Ok(response) = robots.call(request).await;
/// assert_eq!(response.status(), http::StatusCode::OK);
/// assert_eq!(response.headers()["content-length"], "14");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ServeFile(ServeDir);

impl ServeFile {
    /// Serves the file at `path`, opened anew for each request.
    ///
    /// # Examples
    ///
    /// ```
    /// let index = mapview::http::ServeFile::new("dist/index.html");
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(ServeDir::file(path.into()))
    }

    /// As [`ServeDir::precompressed_gzip`].
    ///
    /// # Examples
    ///
    /// ```
    /// let index = mapview::http::ServeFile::new("index.html").precompressed_gzip();
    /// ```
    pub fn precompressed_gzip(self) -> Self {
        Self(self.0.precompressed_gzip())
    }

    /// As [`ServeDir::precompressed_br`].
    ///
    /// # Examples
    ///
    /// ```
    /// let index = mapview::http::ServeFile::new("index.html").precompressed_br();
    /// ```
    pub fn precompressed_br(self) -> Self {
        Self(self.0.precompressed_br())
    }

    /// As [`ServeDir::precompressed_zstd`].
    ///
    /// # Examples
    ///
    /// ```
    /// let index = mapview::http::ServeFile::new("index.html").precompressed_zstd();
    /// ```
    pub fn precompressed_zstd(self) -> Self {
        Self(self.0.precompressed_zstd())
    }

    /// As [`ServeDir::cache_control`].
    ///
    /// # Examples
    ///
    /// ```
    /// let index = mapview::http::ServeFile::new("index.html")
    ///     .cache_control(http::HeaderValue::from_static("no-cache"));
    /// ```
    pub fn cache_control(self, value: HeaderValue) -> Self {
        Self(self.0.cache_control(value))
    }

    /// As [`ServeDir::open_file_cache`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let index = mapview::http::ServeFile::new("index.html").open_file_cache(
    ///     Duration::from_secs(1),
    ///     4,
    ///     1 << 20,
    /// );
    /// ```
    pub fn open_file_cache(self, valid_for: Duration, max_entries: usize, max_bytes: u64) -> Self {
        Self(self.0.open_file_cache(valid_for, max_entries, max_bytes))
    }

    /// As [`ServeDir::with_buf_chunk_size`].
    ///
    /// # Examples
    ///
    /// ```
    /// let video = mapview::http::ServeFile::new("talk.mp4").with_buf_chunk_size(1 << 20);
    /// ```
    pub fn with_buf_chunk_size(self, bytes: usize) -> Self {
        Self(self.0.with_buf_chunk_size(bytes))
    }
}

impl<B: Send + 'static> Service<Request<B>> for ServeFile {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        self.0.call(request)
    }
}
