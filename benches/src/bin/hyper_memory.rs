//! The ceiling of `benches/serve_bench.sh`: hyper 1 answering from memory.
//! Every regular file under ROOT is read into a `Bytes` at start; a GET is
//! answered with the whole file, or with the one range `bytes=FIRST-LAST`
//! (or `bytes=FIRST-`) it asks for (206 and `Content-Range`), as a slice of
//! it. No file I/O and nothing but a hash lookup per request, so what is
//! left is the work of hyper and the kernel. Other `Range` forms are
//! ignored (a 200 with the whole file, as HTTP allows). Served as
//! `tower_http_serve` and the `serve` example serve: one task per
//! connection, HTTP/1.1 with keep-alive, `TCP_NODELAY`.
//!
//! `cargo run --release -p mapview-benches --bin hyper_memory -- ADDR ROOT`

#[path = "../http_server.rs"]
mod http_server;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

/// The served files' contents by URL path (`/dir/name`).
type Files = HashMap<String, Bytes>;

#[tokio::main]
async fn main() -> io::Result<()> {
    let (addr, root) = http_server::addr_and_root("hyper_memory")?;
    let mut files = Files::new();
    load(Path::new(&root), "", &mut files)?;
    let files = Arc::new(files);
    // Bound only once everything is loaded: listening means ready.
    let listener = TcpListener::bind(&addr).await?;
    let service = service_fn(move |request| {
        let response = respond(&files, &request);
        async move { Ok::<_, Infallible>(response) }
    });
    http_server::serve(listener, service).await
}

/// Reads every regular file under `dir` into `files`, keyed by `url` and
/// its path below `dir`.
fn load(dir: &Path, url: &str, files: &mut Files) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().into_string().map_err(|_| {
            let message = format!("{}: name is not UTF-8", path.display());
            io::Error::new(io::ErrorKind::InvalidData, message)
        })?;
        let url = format!("{url}/{name}");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            load(&path, &url, files)?;
        } else if kind.is_file() {
            files.insert(url, Bytes::from(std::fs::read(&path)?));
        }
    }
    Ok(())
}

fn respond(files: &Files, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return status(StatusCode::METHOD_NOT_ALLOWED, None);
    }
    let Some(file) = files.get(request.uri().path()) else {
        return status(StatusCode::NOT_FOUND, None);
    };
    let len = file.len();
    let range = request.headers().get(header::RANGE);
    match range.and_then(|value| parse_range(value.to_str().ok()?)) {
        None => Response::new(Full::new(file.clone())),
        Some((first, _)) if first >= len => status(
            StatusCode::RANGE_NOT_SATISFIABLE,
            Some(format!("bytes */{len}")),
        ),
        Some((first, last)) => {
            let last = last.map_or(len - 1, |last| last.min(len - 1));
            let mut response = status(
                StatusCode::PARTIAL_CONTENT,
                Some(format!("bytes {first}-{last}/{len}")),
            );
            *response.body_mut() = Full::new(file.slice(first..=last));
            response
        }
    }
}

/// An empty response with `code`, and `content_range` if given.
fn status(code: StatusCode, content_range: Option<String>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    if let Some(range) = content_range {
        let value = HeaderValue::try_from(range).expect("a Content-Range of digits is valid");
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response
}

/// `bytes=FIRST-LAST` or `bytes=FIRST-` as `(FIRST, LAST)`; `None` for any
/// other form (suffixes, several ranges, garbage), which is then ignored.
fn parse_range(value: &str) -> Option<(usize, Option<usize>)> {
    let (first, last) = value.strip_prefix("bytes=")?.split_once('-')?;
    let first: usize = first.parse().ok()?;
    let last = match last {
        "" => None,
        last => Some(last.parse().ok().filter(|&last| last >= first)?),
    };
    Some((first, last))
}
