//! [`Site`]: what a service serves and how, and the answer to one request,
//! put together from the other modules of `http`.

use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use super::body::ResponseBody;
use super::cache::{Cache, Limits, Lookup};
use super::conditional::{self, Precondition};
use super::content_type::content_type;
use super::encoding::{Encoding, Precompressed};
use super::file::{Identity, Opened, Prefetch};
use super::multipart::Multipart;
use super::range::{self, Selection};
use super::resolve::{RegularFile, Source, Wait};

/// Tower-http's default body chunk is 64 KiB; mapview's chunks cost no
/// copy, so larger ones only mean fewer polls.
const DEFAULT_CHUNK_SIZE: usize = 256 << 10;

/// The configuration a service shares with its clones.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub(crate) source: Source,
    pub(crate) precompressed: Precompressed,
    pub(crate) cache_control: Option<HeaderValue>,
    pub(crate) chunk_size: usize,
    pub(crate) cache: Option<Arc<FileCache>>,
}

/// Files chosen for earlier requests: by request path (empty for a single
/// file) and the encodings the request accepts.
pub(crate) type FileCache = Cache<(String, Vec<Encoding>), Arc<Chosen>>;

/// The file that answers a request, in one encoding, opened but not yet
/// mapped.
#[derive(Debug)]
struct Picked {
    path: PathBuf,
    file: RegularFile,
    encoding: Option<Encoding>,
}

impl Chosen {
    /// Whether `picked` is this very file, in the same version.
    fn is(&self, picked: &Picked) -> bool {
        self.encoding == picked.encoding
            && self.path == picked.path
            && Identity::of(&picked.file.metadata) == self.opened.identity
    }
}

/// The file that answers a request, in one encoding, opened.
#[derive(Debug)]
pub(crate) struct Chosen {
    /// The path it was asked for by, for its `Content-Type`.
    path: PathBuf,
    encoding: Option<Encoding>,
    opened: Opened,
}

impl Site {
    pub(crate) fn new(source: Source) -> Self {
        Self {
            source,
            precompressed: Precompressed::default(),
            cache_control: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            cache: None,
        }
    }

    /// Shares opened files across requests, within `limits`.
    pub(crate) fn cache(&mut self, limits: Limits) {
        self.cache = Some(Arc::new(Cache::new(limits)));
    }

    /// The response to a request, or the status of a failure to find the
    /// file (`NOT_FOUND` for the caller's fallback).
    pub(crate) async fn respond(
        self: &Arc<Self>,
        request: &Parts,
    ) -> Result<Response<ResponseBody>, StatusCode> {
        let head = match request.method {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
                let allow = HeaderValue::from_static("GET, HEAD");
                response.headers_mut().insert(header::ALLOW, allow);
                return Ok(response);
            }
        };
        let path = request.uri.path();
        let key = self.cache.as_ref().map(|cache| {
            let path = match self.source {
                Source::Dir { .. } => path.to_owned(),
                Source::File(_) => String::new(),
            };
            (
                cache,
                (path, self.precompressed.preferred(&request.headers)),
            )
        });
        let mut stale = None;
        if let Some((cache, key)) = &key {
            let now = Instant::now();
            match cache.get(key, now) {
                // Nothing to look up or open: answer here from a slice of
                // the file's mapping, and let the body's stream fault
                // pages in in the background.
                Lookup::Fresh(chosen) => {
                    return self.reply(&chosen, &request.headers, head, Prefetch::Background)
                }
                // Most checks are answered from the kernel's caches: here.
                Lookup::Stale(chosen) if self.is_current(&chosen, path, &request.headers) => {
                    cache.insert(key.clone(), Arc::clone(&chosen), chosen.opened.len, now);
                    return self.reply(&chosen, &request.headers, head, Prefetch::Background);
                }
                Lookup::Stale(chosen) => stale = Some(chosen),
                Lookup::Missing => {}
            }
        }
        let site = Arc::clone(self);
        let path = path.to_owned();
        let headers = request.headers.clone();
        let key = key.map(|(cache, key)| (Arc::clone(cache), key));
        // Lookups, opens and mmap may wait on the disk (or on the process's
        // memory-map lock): one trip to the blocking pool for all of them.
        let answer = move || {
            let shared = key.is_some();
            let chosen = site.choose(&path, &headers, stale, shared)?;
            if let Some((cache, key)) = key {
                cache.insert(key, Arc::clone(&chosen), chosen.opened.len, Instant::now());
            }
            site.reply(&chosen, &headers, head, Prefetch::Here)
        };
        tokio::task::spawn_blocking(answer)
            .await
            .unwrap_or(Err(StatusCode::INTERNAL_SERVER_ERROR))
    }

    /// Whether `path` still leads to `chosen`'s file, unchanged, as far as
    /// the kernel can tell from its caches, without waiting on the disk: on
    /// an async worker. `false` when it cannot tell.
    fn is_current(&self, chosen: &Chosen, path: &str, request: &HeaderMap) -> bool {
        self.pick(path, request, Wait::Never)
            .is_ok_and(|picked| chosen.is(&picked))
    }

    /// Finds the file for `path`, or its precompressed sibling, and opens
    /// it: `stale` itself if that is still the same file, else a new
    /// mapping (`shared`, for a cache entry). Blocking.
    fn choose(
        &self,
        path: &str,
        request: &HeaderMap,
        stale: Option<Arc<Chosen>>,
        shared: bool,
    ) -> Result<Arc<Chosen>, StatusCode> {
        let picked = self.pick(path, request, Wait::Allowed)?;
        if let Some(stale) = stale.filter(|stale| stale.is(&picked)) {
            return Ok(stale);
        }
        let opened =
            Opened::map(&picked.file, shared).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(Arc::new(Chosen {
            path: picked.path,
            encoding: picked.encoding,
            opened,
        }))
    }

    /// Opens the file for `path`, or its preferred precompressed sibling.
    fn pick(&self, path: &str, request: &HeaderMap, wait: Wait) -> Result<Picked, StatusCode> {
        let found = self.source.find(path, wait)?;
        for encoding in self.precompressed.preferred(request) {
            if let Some(file) = self.source.sibling(&found.path, encoding.suffix(), wait)? {
                let encoding = Some(encoding);
                return Ok(Picked {
                    path: found.path,
                    file,
                    encoding,
                });
            }
        }
        Ok(Picked {
            path: found.path,
            file: found.file,
            encoding: None,
        })
    }

    /// The response to a GET or HEAD answered from `chosen`; `prefetch`
    /// tells where the body's first bytes are faulted in.
    fn reply(
        &self,
        chosen: &Chosen,
        request: &HeaderMap,
        head: bool,
        prefetch: Prefetch,
    ) -> Result<Response<ResponseBody>, StatusCode> {
        let Chosen {
            path,
            encoding,
            opened,
        } = chosen;
        let mut response = Response::new(ResponseBody::empty());
        let headers = response.headers_mut();
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        headers.insert(header::ETAG, opened.etag.clone());
        if let Some(modified) = &opened.last_modified {
            headers.insert(header::LAST_MODIFIED, modified.clone());
        }
        if let Some(cache_control) = &self.cache_control {
            headers.insert(header::CACHE_CONTROL, cache_control.clone());
        }
        if self.precompressed.any() {
            let vary = HeaderValue::from_static("accept-encoding");
            headers.insert(header::VARY, vary);
        }
        if let Some(encoding) = *encoding {
            let token = HeaderValue::from_static(encoding.token());
            headers.insert(header::CONTENT_ENCODING, token);
        }
        let range_applies = match conditional::evaluate(request, &opened.validators) {
            Precondition::Failed => {
                *response.status_mut() = StatusCode::PRECONDITION_FAILED;
                return Ok(response);
            }
            Precondition::NotModified => {
                *response.status_mut() = StatusCode::NOT_MODIFIED;
                return Ok(response);
            }
            Precondition::Proceed { range_applies } => range_applies,
        };
        let selection = match request.get(header::RANGE) {
            Some(range) if range_applies => range::select(range.as_bytes(), opened.len),
            _ => Selection::Full,
        };
        let content_type = content_type(path);
        let len = opened.len;
        let (code, content_type, length, body) = match selection {
            Selection::Unsatisfiable => {
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_RANGE, value(format!("bytes */{len}")));
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                return Ok(response);
            }
            Selection::Full => {
                let body = self.range_body(opened, 0..len, head, prefetch);
                let content_type = HeaderValue::from_static(content_type);
                (StatusCode::OK, content_type, len, body)
            }
            Selection::Ranges(ranges) if ranges.len() == 1 => {
                let range = ranges[0].clone();
                let content_range = format!("bytes {}-{}/{len}", range.start, range.end - 1);
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_RANGE, value(content_range));
                let length = range.end - range.start;
                let body = self.range_body(opened, range, head, prefetch);
                let content_type = HeaderValue::from_static(content_type);
                (StatusCode::PARTIAL_CONTENT, content_type, length, body)
            }
            Selection::Ranges(ranges) => {
                let multipart = Multipart::new(&ranges, len, content_type);
                let content_type = value(multipart.content_type());
                let length = multipart.len();
                let body = match head {
                    true => Ok(ResponseBody::empty()),
                    false => multipart.body(opened, self.chunk_size, prefetch),
                };
                (StatusCode::PARTIAL_CONTENT, content_type, length, body)
            }
        };
        *response.status_mut() = code;
        *response.body_mut() = body.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, content_type);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        Ok(response)
    }

    /// The body of `range` of the file; empty for HEAD.
    fn range_body(
        &self,
        opened: &Opened,
        range: Range<u64>,
        head: bool,
        prefetch: Prefetch,
    ) -> io::Result<ResponseBody> {
        if head || range.is_empty() {
            return Ok(ResponseBody::empty());
        }
        let segment = opened.segment(range, self.chunk_size, prefetch)?;
        Ok(ResponseBody::from_segments([segment]))
    }
}

/// A header value made here: visible ASCII by construction (tags, dates,
/// numbers, types).
pub(crate) fn value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("header values made here are visible ASCII")
}

/// A response with just a status and its reason as a short text body.
pub(crate) fn status(code: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::bytes(format!("{code}\n")));
    *response.status_mut() = code;
    let text = HeaderValue::from_static("text/plain; charset=utf-8");
    response.headers_mut().insert(header::CONTENT_TYPE, text);
    response
}
