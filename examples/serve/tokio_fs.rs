//! The `serve` example's comparison backend (`--backend tokio-fs`): the
//! same kind of server with `tokio::fs::File` + `ReaderStream` bodies (each
//! read on the blocking pool, copied twice), as tower-http's `ServeDir`
//! reads. It keeps its own, simpler HTTP logic (single ranges, `ETag`,
//! `If-None-Match`, `If-Modified-Since`), so that `benches/serve_bench.sh`
//! can compare it with `mapview::http` until the bench has tower-http's
//! `ServeDir` itself.
//!
//! ```text
//!   request ─> method? ─> resolve path (blocking pool) ─> plan ─> response
//!              405        400/403/404                     200 / 206 / 304 / 416
//!                                                         body: ReaderStream of the file
//! ```

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::AsyncReadExt;

/// The body of every response.
pub type Body = UnsyncBoxBody<Bytes, io::Error>;

/// Bytes per body chunk unless told otherwise: tower-http's `ServeDir`
/// default.
const DEFAULT_CHUNK_SIZE: usize = 64 << 10;

/// A file or a directory tree to serve.
#[derive(Debug, Clone)]
pub struct Site {
    /// Canonical path of the directory (or of the single file) served.
    root: PathBuf,
    /// Serving one file: its name, which it is also served under.
    single_file: Option<OsString>,
    chunk_size: usize,
}

/// What a request gets, decided from its headers and the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// 200 with the whole file.
    Full,
    /// 206 with this part of it.
    Partial(Range<u64>),
    /// 304: the client's copy is current.
    NotModified,
    /// 416: the range lies outside the file or is malformed.
    Unsatisfiable,
}

/// What a `Range` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// Serve the whole file: not a single byte range (another unit, or
    /// several ranges, which RFC 9110 lets a server ignore).
    Ignore,
    /// These bytes, clamped to the file.
    Bytes(Range<u64>),
    /// A byte range outside the file, or a malformed one.
    Unsatisfiable,
}

/// The facts about a file that the response headers are made from.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub len: u64,
    pub modified: Option<SystemTime>,
    pub etag: String,
}

impl FileInfo {
    pub fn new(len: u64, modified: Option<SystemTime>) -> Self {
        let etag = match modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok()) {
            Some(since) => format!("\"{len:x}-{:x}\"", since.as_nanos()),
            None => format!("\"{len:x}\""),
        };
        Self {
            len,
            modified,
            etag,
        }
    }
}

/// An open file, ready to be answered from.
struct Opened {
    path: PathBuf,
    info: FileInfo,
    file: File,
}

impl Site {
    /// Serves `path`: a directory tree, or a single file.
    pub fn new(path: &Path) -> io::Result<Self> {
        let root = path.canonicalize()?;
        let single_file = if root.is_file() {
            root.file_name().map(Into::into)
        } else {
            None
        };
        Ok(Self {
            root,
            single_file,
            chunk_size: DEFAULT_CHUNK_SIZE,
        })
    }

    /// Sets the bytes per body chunk (at least 1).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(1);
        self
    }

    /// Answers one request. Never fails: every problem is a 4xx or 5xx.
    pub async fn handle<B>(self: Arc<Self>, request: Request<B>) -> Response<Body> {
        let (parts, _) = request.into_parts();
        let head = match parts.method {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                return response;
            }
        };
        // Path lookups, opens and mmap may wait on the disk (or on the
        // process's memory-map lock): one trip to the blocking pool for all.
        let respond = move || match self.respond(parts.uri.path(), &parts.headers, head) {
            Ok(response) => response,
            Err(code) => status(code),
        };
        tokio::task::spawn_blocking(respond)
            .await
            .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR))
    }

    /// The response to a GET (or, with `head`, a HEAD) of `uri_path`.
    fn respond(
        &self,
        uri_path: &str,
        request: &HeaderMap,
        head: bool,
    ) -> Result<Response<Body>, StatusCode> {
        let opened = self.open(uri_path)?;
        let mut response = Response::new(empty());
        let headers = response.headers_mut();
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        headers.insert(header::ETAG, value(&opened.info.etag));
        if let Some(modified) = opened.info.modified {
            let date = httpdate::fmt_http_date(modified);
            headers.insert(header::LAST_MODIFIED, value(&date));
        }
        let len = opened.info.len;
        let range = match plan(request, &opened.info) {
            Plan::NotModified => {
                *response.status_mut() = StatusCode::NOT_MODIFIED;
                return Ok(response);
            }
            Plan::Unsatisfiable => {
                headers.insert(header::CONTENT_RANGE, value(&format!("bytes */{len}")));
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                return Ok(response);
            }
            Plan::Full => 0..len,
            Plan::Partial(range) => {
                let last = range.end - 1;
                let content_range = format!("bytes {}-{last}/{len}", range.start);
                headers.insert(header::CONTENT_RANGE, value(&content_range));
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                range
            }
        };
        let headers = response.headers_mut();
        let content_length = HeaderValue::from(range.end - range.start);
        headers.insert(header::CONTENT_LENGTH, content_length);
        let content_type = HeaderValue::from_static(content_type(&opened.path));
        headers.insert(header::CONTENT_TYPE, content_type);
        if !head && !range.is_empty() {
            let body = body(opened.file, range, self.chunk_size);
            *response.body_mut() = body.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        }
        Ok(response)
    }

    /// Finds and opens the file a request path names, inside the root.
    fn open(&self, uri_path: &str) -> Result<Opened, StatusCode> {
        let segments = path_segments(uri_path)?;
        let path = match &self.single_file {
            Some(name) if segments.is_empty() || segments == [name.clone()] => self.root.clone(),
            Some(_) => return Err(StatusCode::NOT_FOUND),
            None => {
                let path = self.inside_root(&segments.iter().collect::<PathBuf>())?;
                if path.is_dir() {
                    self.inside_root(&path.join("index.html"))?
                } else {
                    path
                }
            }
        };
        let file = File::open(&path).map_err(|e| io_status(&e))?;
        let metadata = file.metadata().map_err(|e| io_status(&e))?;
        if !metadata.is_file() {
            return Err(StatusCode::NOT_FOUND);
        }
        let info = FileInfo::new(metadata.len(), metadata.modified().ok());
        Ok(Opened { path, info, file })
    }

    /// `relative` (or an absolute path under the root) with symlinks
    /// resolved, if it stays inside the root: 403 if it leads out of it.
    ///
    /// Between this check and the open, someone who can write inside the
    /// root could swap a directory for a symlink; serve trees that only you
    /// write to (or use `openat2(RESOLVE_BENEATH)`).
    fn inside_root(&self, relative: &Path) -> Result<PathBuf, StatusCode> {
        let path = self
            .root
            .join(relative)
            .canonicalize()
            .map_err(|e| io_status(&e))?;
        if !path.starts_with(&self.root) {
            return Err(StatusCode::FORBIDDEN);
        }
        Ok(path)
    }
}

/// The body for `range` of an opened file. Blocking (it seeks); call it
/// inside a tokio runtime.
fn body(mut file: File, range: Range<u64>, chunk_size: usize) -> io::Result<Body> {
    file.seek(SeekFrom::Start(range.start))?;
    let file = tokio::fs::File::from_std(file);
    let reader = file.take(range.end - range.start);
    let chunks = tokio_util::io::ReaderStream::with_capacity(reader, chunk_size);
    Ok(StreamBody::new(chunks.map_ok(Frame::data)).boxed_unsync())
}

/// The segments of a request path, percent-decoded: `.` and empty ones
/// dropped. 400 for a path that is not `/...` or a bad escape, 403 for a
/// `..` (even encoded) or a segment that decodes to something holding a
/// `/` (which `Path::join` would take as an absolute path) or a NUL.
pub fn path_segments(uri_path: &str) -> Result<Vec<OsString>, StatusCode> {
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

/// Parses a `Range` header value against a file of `len` bytes: one of
/// `bytes=a-b`, `bytes=a-`, `bytes=-n`.
pub fn parse_range(value: &[u8], len: u64) -> RangeRequest {
    let Ok(value) = std::str::from_utf8(value) else {
        return RangeRequest::Unsatisfiable;
    };
    let Some((unit, spec)) = value.split_once('=') else {
        return RangeRequest::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeRequest::Ignore;
    }
    if spec.contains(',') {
        return RangeRequest::Ignore;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Unsatisfiable;
    };
    let number = |s: &str| match s.bytes().all(|b| b.is_ascii_digit()) {
        true => s.parse::<u64>().ok(),
        false => None,
    };
    let range = match (first, last) {
        ("", suffix) => match number(suffix) {
            Some(n) if n > 0 && len > 0 => len.saturating_sub(n)..len,
            _ => return RangeRequest::Unsatisfiable,
        },
        (first, "") => match number(first) {
            Some(first) => first..len,
            None => return RangeRequest::Unsatisfiable,
        },
        (first, last) => match (number(first), number(last)) {
            (Some(first), Some(last)) if first <= last => first..last.saturating_add(1).min(len),
            _ => return RangeRequest::Unsatisfiable,
        },
    };
    if range.start >= len {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Bytes(range)
}

/// Decides what a GET or HEAD of a file gets: conditional headers first
/// (`If-None-Match`, else `If-Modified-Since`), then `Range` (unless an
/// `If-Range` names another version).
pub fn plan(headers: &HeaderMap, info: &FileInfo) -> Plan {
    let last_modified = info.modified.map(httpdate::fmt_http_date);
    if let Some(tags) = headers.get(header::IF_NONE_MATCH) {
        if etag_matches(tags.as_bytes(), &info.etag) {
            return Plan::NotModified;
        }
    } else if let (Some(since), Some(modified)) =
        (headers.get(header::IF_MODIFIED_SINCE), info.modified)
    {
        let since = since
            .to_str()
            .ok()
            .and_then(|s| httpdate::parse_http_date(s).ok());
        // HTTP dates have whole seconds.
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if since.is_some_and(|since| secs(modified) <= secs(since)) {
            return Plan::NotModified;
        }
    }
    let Some(range) = headers.get(header::RANGE) else {
        return Plan::Full;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        let current = if_range.as_bytes() == info.etag.as_bytes()
            || last_modified.is_some_and(|date| if_range.as_bytes() == date.as_bytes());
        if !current {
            return Plan::Full;
        }
    }
    match parse_range(range.as_bytes(), info.len) {
        RangeRequest::Ignore => Plan::Full,
        RangeRequest::Bytes(range) if range == (0..info.len) => Plan::Full,
        RangeRequest::Bytes(range) => Plan::Partial(range),
        RangeRequest::Unsatisfiable => Plan::Unsatisfiable,
    }
}

/// Whether an `If-None-Match` list names `etag` (weak comparison) or is `*`.
fn etag_matches(list: &[u8], etag: &str) -> bool {
    let Ok(list) = std::str::from_utf8(list) else {
        return false;
    };
    list.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// A guess from the file name's extension.
fn content_type(path: &Path) -> &'static str {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match extension.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "md" | "rs" | "toml" => "text/plain; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

fn io_status(error: &io::Error) -> StatusCode {
    match error.kind() {
        io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        // Missing, not a directory, a name too long, a symlink loop...
        _ => StatusCode::NOT_FOUND,
    }
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header values made here are visible ASCII")
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A response with just a status and its reason as a short text body.
fn status(code: StatusCode) -> Response<Body> {
    let text = format!("{code}\n");
    let body = Full::new(Bytes::from(text)).map_err(|never| match never {});
    let mut response = Response::new(body.boxed_unsync());
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
