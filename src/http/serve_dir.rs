//! [`ServeDir`]: a tower service serving the files under a directory.

use std::convert::Infallible;
use std::future::poll_fn;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use tower_service::Service;

use super::body::ResponseBody;
use super::cache::Limits;
use super::encoding::Encoding;
use super::future::ResponseFuture;
use super::resolve::Source;
use super::respond::{status, Site};

/// A tower service serving the files under a directory, shaped like
/// tower-http's `ServeDir`: mount it with
/// `axum::Router::nest_service("/files", ServeDir::new("public"))`.
///
/// A request for a path that names no file goes to the fallback service
/// (by default [`NotFound`]); one that tries to leave the directory gets
/// 403. See the [module documentation](super) for the rest.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use mapview::http::ServeDir;
/// use tower_service::Service;
///
/// let dir = tempfile::tempdir()?;
/// std::fs::create_dir(dir.path().join("docs"))?;
/// std::fs::write(dir.path().join("docs/index.html"), "<p>hi</p>")?;
/// let mut files = ServeDir::new(dir.path()).cache_control(
///     http::HeaderValue::from_static("max-age=60"),
/// );
///
/// let request = http::Request::get("/docs/").body(()).unwrap();
/// let Ok(response) = files.call(request).await;
/// assert_eq!(response.status(), http::StatusCode::OK);
/// assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
/// assert_eq!(response.headers()["cache-control"], "max-age=60");
///
/// let request = http::Request::get("/../etc/passwd").body(()).unwrap();
/// let Ok(response) = files.call(request).await;
/// assert_eq!(response.status(), http::StatusCode::FORBIDDEN);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ServeDir<F = NotFound> {
    site: Arc<Site>,
    fallback: F,
}

impl ServeDir {
    /// Serves the files under `path`. Nothing is checked until a request
    /// comes: a missing directory means 404s.
    ///
    /// # Examples
    ///
    /// ```
    /// let files = mapview::http::ServeDir::new("public");
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let source = Source::Dir {
            root: path.into(),
            index_html: true,
        };
        Self {
            site: Arc::new(Site::new(source)),
            fallback: NotFound,
        }
    }

    pub(crate) fn file(path: PathBuf) -> Self {
        Self {
            site: Arc::new(Site::new(Source::File(path))),
            fallback: NotFound,
        }
    }
}

impl<F> ServeDir<F> {
    /// Whether a request for a directory gets its `index.html` (the
    /// default) or goes to the fallback.
    ///
    /// # Examples
    ///
    /// ```
    /// let files = mapview::http::ServeDir::new("public").append_index_html_on_directories(false);
    /// ```
    pub fn append_index_html_on_directories(mut self, append: bool) -> Self {
        if let Source::Dir { index_html, .. } = &mut Arc::make_mut(&mut self.site).source {
            *index_html = append;
        }
        self
    }

    /// Serves `x.gz` in place of `x` (with `Content-Encoding: gzip`) to
    /// clients that accept gzip, when it exists.
    ///
    /// # Examples
    ///
    /// ```
    /// let files = mapview::http::ServeDir::new("public").precompressed_gzip();
    /// ```
    pub fn precompressed_gzip(self) -> Self {
        self.precompressed(Encoding::Gzip)
    }

    /// Serves `x.br` in place of `x` (with `Content-Encoding: br`) to
    /// clients that accept Brotli, when it exists.
    ///
    /// # Examples
    ///
    /// ```
    /// let files = mapview::http::ServeDir::new("public").precompressed_br();
    /// ```
    pub fn precompressed_br(self) -> Self {
        self.precompressed(Encoding::Br)
    }

    /// Serves `x.zst` in place of `x` (with `Content-Encoding: zstd`) to
    /// clients that accept zstd, when it exists.
    ///
    /// # Examples
    ///
    /// ```
    /// let files = mapview::http::ServeDir::new("public").precompressed_zstd();
    /// ```
    pub fn precompressed_zstd(self) -> Self {
        self.precompressed(Encoding::Zstd)
    }

    fn precompressed(mut self, encoding: Encoding) -> Self {
        Arc::make_mut(&mut self.site).precompressed.enable(encoding);
        self
    }

    /// Sends `value` as the `Cache-Control` of every file response (200,
    /// 206, 304, 412, 416).
    ///
    /// # Examples
    ///
    /// ```
    /// use http::HeaderValue;
    ///
    /// let files = mapview::http::ServeDir::new("public")
    ///     .cache_control(HeaderValue::from_static("public, max-age=3600"));
    /// ```
    pub fn cache_control(mut self, value: HeaderValue) -> Self {
        Arc::make_mut(&mut self.site).cache_control = Some(value);
        self
    }

    /// Sets the bytes per body chunk (at least 1; 256 KiB by default). The
    /// chunks point into the mapping, so larger ones cost no copy.
    ///
    /// # Examples
    ///
    /// ```
    /// let files = mapview::http::ServeDir::new("public").with_buf_chunk_size(64 << 10);
    /// ```
    pub fn with_buf_chunk_size(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.site).chunk_size = bytes.max(1);
        self
    }

    /// Shares opened files and their mappings across requests, as nginx's
    /// `open_file_cache`: a request for a path answered less than
    /// `valid_for` ago is answered from the file mapped then, on the async
    /// worker, without a lookup, an open, an `mmap` or a trip to the
    /// blocking pool. After `valid_for` the path is looked up again, so a
    /// file replaced on disk is served fresh, while one that is unchanged
    /// (same device, inode, size and modification time) keeps its mapping.
    /// At most `max_entries` files and `max_bytes` bytes of files are
    /// kept, the least recently used going first; a file larger than
    /// `max_bytes` is never kept. A cached file stays mapped while it is
    /// cached: its resident pages (the page cache's, shared by all its
    /// responses) count in the process's RSS, as `max_bytes` bounds them,
    /// and are not released behind each response as an uncached file's
    /// are.
    ///
    /// Off by default. A file truncated while cached gets responses that
    /// end with an error (a cut connection) until `valid_for` has passed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let files = mapview::http::ServeDir::new("public").open_file_cache(
    ///     Duration::from_secs(1),
    ///     10_000,
    ///     4 << 30,
    /// );
    /// ```
    pub fn open_file_cache(
        mut self,
        valid_for: Duration,
        max_entries: usize,
        max_bytes: u64,
    ) -> Self {
        Arc::make_mut(&mut self.site).cache(Limits {
            valid_for,
            max_entries,
            max_bytes,
        });
        self
    }

    /// Sends requests for paths that name no file to `fallback` (any
    /// tower service of `http::Request`s that never fails), in place of a
    /// 404.
    ///
    /// # Examples
    ///
    /// ```
    /// use mapview::http::{ServeDir, ServeFile};
    ///
    /// // A single-page app: unknown paths get the index.
    /// let app = ServeDir::new("dist").fallback(ServeFile::new("dist/index.html"));
    /// ```
    pub fn fallback<F2>(self, fallback: F2) -> ServeDir<F2> {
        ServeDir {
            site: self.site,
            fallback,
        }
    }
}

impl<B, F, FB> Service<Request<B>> for ServeDir<F>
where
    B: Send + 'static,
    F: Service<Request<B>, Response = Response<FB>, Error = Infallible> + Clone + Send + 'static,
    F::Future: Send + 'static,
    FB: http_body::Body<Data = Bytes> + Send + 'static,
    FB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        let site = Arc::clone(&self.site);
        let mut fallback = self.fallback.clone();
        ResponseFuture::new(async move {
            let (parts, body) = request.into_parts();
            match site.respond(&parts).await {
                Ok(response) => Ok(response),
                Err(StatusCode::NOT_FOUND) => {
                    let Ok(()) = poll_fn(|cx| fallback.poll_ready(cx)).await;
                    let Ok(response) = fallback.call(Request::from_parts(parts, body)).await;
                    Ok(response.map(ResponseBody::boxed))
                }
                Err(code) => Ok(status(code)),
            }
        })
    }
}

/// The default fallback of [`ServeDir`]: a 404 for every request.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_service::Service;
///
/// let request = http::Request::get("/anything").body(()).unwrap();
/// let Ok(response) = mapview::http::NotFound.call(request).await;
/// assert_eq!(response.status(), http::StatusCode::NOT_FOUND);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFound;

impl<B> Service<Request<B>> for NotFound {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<ResponseBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        std::future::ready(Ok(status(StatusCode::NOT_FOUND)))
    }
}
