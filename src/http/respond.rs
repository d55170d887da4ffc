//! [`Site`]: what a service serves and how, and the answer to one request,
//! put together from the other modules of `http`.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use super::body::ResponseBody;
use super::conditional::{self, Precondition};
use super::content_type::content_type;
use super::encoding::Precompressed;
use super::file::Opened;
use super::multipart::Multipart;
use super::range::{self, Selection};
use super::resolve::Source;

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
}

impl Site {
    pub(crate) fn new(source: Source) -> Self {
        Self {
            source,
            precompressed: Precompressed::default(),
            cache_control: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
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
        let site = Arc::clone(self);
        let path = request.uri.path().to_owned();
        let headers = request.headers.clone();
        // Lookups, opens and mmap may wait on the disk (or on the process's
        // memory-map lock): one trip to the blocking pool for all of them.
        tokio::task::spawn_blocking(move || site.answer(&path, &headers, head))
            .await
            .unwrap_or(Err(StatusCode::INTERNAL_SERVER_ERROR))
    }

    /// Finds the file and answers from it. Blocking.
    fn answer(
        &self,
        path: &str,
        request: &HeaderMap,
        head: bool,
    ) -> Result<Response<ResponseBody>, StatusCode> {
        let found = self.source.find(path)?;
        let sibling = self
            .precompressed
            .preferred(request)
            .into_iter()
            .find_map(|encoding| {
                let file = self.source.sibling(&found.path, encoding.suffix())?;
                Some((file, encoding))
            });
        let (file, encoding) = match sibling {
            Some((file, encoding)) => (file, Some(encoding)),
            None => (found.file, None),
        };
        let opened = Opened::map(&file).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;

        let mut response = Response::new(ResponseBody::empty());
        let headers = response.headers_mut();
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        headers.insert(header::ETAG, value(opened.validators.etag.clone()));
        if let Some(modified) = opened.validators.modified {
            let date = httpdate::fmt_http_date(modified);
            headers.insert(header::LAST_MODIFIED, value(date));
        }
        if let Some(cache_control) = &self.cache_control {
            headers.insert(header::CACHE_CONTROL, cache_control.clone());
        }
        if self.precompressed.any() {
            let vary = HeaderValue::from_static("accept-encoding");
            headers.insert(header::VARY, vary);
        }
        if let Some(encoding) = encoding {
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
        let content_type = content_type(&found.path);
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
                let body = self.range_body(&opened, 0..len, head);
                (StatusCode::OK, content_type.into(), len, body)
            }
            Selection::Ranges(ranges) if ranges.len() == 1 => {
                let range = ranges[0].clone();
                let content_range = format!("bytes {}-{}/{len}", range.start, range.end - 1);
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_RANGE, value(content_range));
                let length = range.end - range.start;
                let body = self.range_body(&opened, range, head);
                (
                    StatusCode::PARTIAL_CONTENT,
                    content_type.into(),
                    length,
                    body,
                )
            }
            Selection::Ranges(ranges) => {
                let multipart = Multipart::new(&ranges, len, content_type);
                let (content_type, length) = (multipart.content_type(), multipart.len());
                let body = match head {
                    true => Ok(ResponseBody::empty()),
                    false => multipart.body(&opened, self.chunk_size),
                };
                (StatusCode::PARTIAL_CONTENT, content_type, length, body)
            }
        };
        *response.status_mut() = code;
        *response.body_mut() = body.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, value(content_type));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        Ok(response)
    }

    /// The body of `range` of the file; empty for HEAD.
    fn range_body(
        &self,
        opened: &Opened,
        range: Range<u64>,
        head: bool,
    ) -> io::Result<ResponseBody> {
        if head || range.is_empty() {
            return Ok(ResponseBody::empty());
        }
        let segment = opened.segment(range, self.chunk_size)?;
        Ok(ResponseBody::from_segments([segment]))
    }
}

/// A header value made here: visible ASCII by construction (tags, dates,
/// numbers, types).
fn value(text: String) -> HeaderValue {
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
