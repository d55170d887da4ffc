//! The `serve` example's HTTP logic, started in-process on a free loopback
//! port and driven with hyper-util's client (and raw bytes over a socket
//! for requests a client would not send).

#[path = "../examples/serve/files.rs"]
mod files;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use files::{Backend, RangeRequest, Site};
use http_body_util::{BodyExt, Empty};
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longer than a few body chunks, not a multiple of a page.
const DATA_LEN: usize = (256 << 10) * 2 + 12_345;

fn data() -> Vec<u8> {
    (0..DATA_LEN as u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect()
}

/// A served tree in a temp dir:
///
/// ```text
/// secret.txt                  (outside the root)
/// root/data.bin  root/empty.bin  root/sub/index.html
/// root/in -> data.bin         root/out -> ../secret.txt
/// ```
struct Server {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    client: Client<HttpConnector, Empty<Bytes>>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Server {
    async fn start(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), "secret\n").unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("data.bin"), data()).unwrap();
        std::fs::write(root.join("empty.bin"), "").unwrap();
        std::fs::write(root.join("sub/index.html"), "<p>hi</p>\n").unwrap();
        std::os::unix::fs::symlink("data.bin", root.join("in")).unwrap();
        std::os::unix::fs::symlink("../secret.txt", root.join("out")).unwrap();
        Self::serve(dir, &root, backend).await
    }

    async fn serve(dir: tempfile::TempDir, path: &Path, backend: Backend) -> Self {
        // Small chunks: a body is many of them.
        let site = Arc::new(Site::new(path, backend).unwrap().chunk_size(100_000));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(files::serve(listener, site));
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            _dir: dir,
            addr,
            client,
        }
    }

    async fn request(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(request.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request(Method::GET, path, headers).await
    }

    /// Sends `bytes` as they are and returns the response's status line.
    async fn raw(&self, bytes: &[u8]) -> String {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8_lossy(&response);
        response.lines().next().unwrap_or("").to_owned()
    }
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

const BACKENDS: [Backend; 2] = [Backend::Mapview, Backend::TokioFs];

#[tokio::test]
async fn get_returns_the_whole_file_with_validators() {
    for backend in BACKENDS {
        let server = Server::start(backend).await;
        let reply = server.get("/data.bin", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{backend:?}");
        assert_eq!(reply.body, data(), "{backend:?}");
        assert_eq!(reply.header(header::CONTENT_LENGTH), DATA_LEN.to_string());
        assert_eq!(reply.header(header::ACCEPT_RANGES), "bytes");
        assert!(reply.header(header::ETAG).starts_with('"'));
        httpdate::parse_http_date(reply.header(header::LAST_MODIFIED)).unwrap();
    }
}

#[tokio::test]
async fn head_has_the_headers_of_get_and_no_body() {
    let server = Server::start(Backend::Mapview).await;
    let get = server.get("/data.bin", &[]).await;
    let head = server.request(Method::HEAD, "/data.bin", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    for name in [header::CONTENT_LENGTH, header::ETAG, header::LAST_MODIFIED] {
        assert_eq!(head.header(name.clone()), get.header(name));
    }
}

#[tokio::test]
async fn each_range_form_gets_206_with_content_range() {
    let len = DATA_LEN as u64;
    let data = data();
    let cases = [
        ("bytes=10-19", 10..20),
        ("bytes=300000-", 300_000..len),
        ("bytes=-100", len - 100..len),
        ("bytes=5-99999999", 5..len),
        ("bytes=0-0", 0..1),
    ];
    for backend in BACKENDS {
        let server = Server::start(backend).await;
        for (range, expected) in cases.clone() {
            let reply = server.get("/data.bin", &[("range", range)]).await;
            assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT, "{range}");
            let content_range = format!("bytes {}-{}/{len}", expected.start, expected.end - 1);
            assert_eq!(reply.header(header::CONTENT_RANGE), content_range);
            let (start, end) = (expected.start as usize, expected.end as usize);
            assert_eq!(reply.body, data[start..end], "{backend:?} {range}");
            assert_eq!(
                reply.header(header::CONTENT_LENGTH),
                (end - start).to_string()
            );
        }
    }
}

#[tokio::test]
async fn unsatisfiable_and_malformed_ranges_get_416_with_the_length() {
    let server = Server::start(Backend::Mapview).await;
    for range in [
        format!("bytes={DATA_LEN}-"),
        "bytes=-0".into(),
        "bytes=20-10".into(),
        "bytes=garbage".into(),
        "bytes=1-2-3".into(),
        "nonsense".into(),
    ] {
        let reply = server.get("/data.bin", &[("range", &range)]).await;
        assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        let content_range = format!("bytes */{DATA_LEN}");
        assert_eq!(reply.header(header::CONTENT_RANGE), content_range);
        assert!(reply.body.is_empty());
    }
}

#[tokio::test]
async fn other_units_and_several_ranges_get_the_whole_file() {
    let server = Server::start(Backend::Mapview).await;
    for range in ["items=0-5", "bytes=0-5,10-20"] {
        let reply = server.get("/data.bin", &[("range", range)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{range}");
        assert_eq!(reply.body.len(), DATA_LEN);
    }
}

#[tokio::test]
async fn matching_etag_gets_304_and_a_stale_if_range_the_whole_file() {
    let server = Server::start(Backend::Mapview).await;
    let first = server.get("/data.bin", &[]).await;
    let etag = first.header(header::ETAG).to_owned();
    let listed = format!("\"other\", W/{etag}");
    for if_none_match in [etag.as_str(), &listed, "*"] {
        let reply = server
            .get("/data.bin", &[("if-none-match", if_none_match)])
            .await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{if_none_match}");
        assert_eq!(reply.header(header::ETAG), etag);
        assert!(reply.body.is_empty());
    }
    let changed = server
        .get("/data.bin", &[("if-none-match", "\"other\"")])
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    let modified = first.header(header::LAST_MODIFIED).to_owned();
    let since = server
        .get("/data.bin", &[("if-modified-since", &modified)])
        .await;
    assert_eq!(since.status, StatusCode::NOT_MODIFIED);

    let range = ("range", "bytes=0-9");
    let current = server.get("/data.bin", &[range, ("if-range", &etag)]).await;
    assert_eq!(current.status, StatusCode::PARTIAL_CONTENT);
    let stale = server
        .get("/data.bin", &[range, ("if-range", "\"other\"")])
        .await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body.len(), DATA_LEN);
}

#[tokio::test]
async fn empty_file_is_served_with_an_empty_body() {
    for backend in BACKENDS {
        let server = Server::start(backend).await;
        let reply = server.get("/empty.bin", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{backend:?}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header(header::CONTENT_LENGTH), "0");
        let range = server.get("/empty.bin", &[("range", "bytes=0-")]).await;
        assert_eq!(range.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(range.header(header::CONTENT_RANGE), "bytes */0");
    }
}

#[tokio::test]
async fn paths_out_of_the_root_are_refused() {
    let server = Server::start(Backend::Mapview).await;
    let refused = |status: &str| status.contains(" 403 ") || status.contains(" 404 ");
    for path in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/sub/%2E%2E/%2e%2e/secret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/%2Ftmp",
        "//etc/passwd",
        "/out",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let status = server.raw(request.as_bytes()).await;
        assert!(refused(&status), "{path}: {status}");
    }
    // Through the client too, and the symlink out gets a 403 in particular.
    assert_eq!(server.get("/out", &[]).await.status, StatusCode::FORBIDDEN);
    let escaped = server.get("/%2e%2e/secret.txt", &[]).await;
    assert_eq!(escaped.status, StatusCode::FORBIDDEN);
    // A symlink that stays inside, and a directory's index, are fine.
    assert_eq!(server.get("/in", &[]).await.body, data());
    assert_eq!(server.get("/sub/", &[]).await.body, "<p>hi</p>\n");
    assert_eq!(server.get("/./data.bin", &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_requests_get_4xx_and_the_server_goes_on() {
    let server = Server::start(Backend::Mapview).await;
    let bad_requests: [&[u8]; 4] = [
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"GET /data.bin HTTP/1.1\r\nhost: x\r\nrange: \xff\xfe\r\nconnection: close\r\n\r\n",
        b"GET /bad%zzescape HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        b"GET /data%00.bin HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ];
    for request in bad_requests {
        let status = server.raw(request).await;
        assert!(
            status.contains(" 4"),
            "{:?}: {status}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(server.get("/data.bin", &[]).await.body, data());
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let server = Server::start(Backend::Mapview).await;
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let reply = server.request(method.clone(), "/data.bin", &[]).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.header(header::ALLOW), "GET, HEAD");
    }
}

#[tokio::test]
async fn a_single_file_is_served_at_its_name_and_at_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.bin");
    std::fs::write(&path, data()).unwrap();
    let site = Site::new(&path, Backend::Mapview).unwrap();
    assert_eq!(site.url_path(), "/one.bin");
    let server = Server::serve(dir, &path, Backend::Mapview).await;
    assert_eq!(server.get("/one.bin", &[]).await.body, data());
    assert_eq!(server.get("/", &[]).await.body, data());
    assert_eq!(
        server.get("/two.bin", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn parse_range_reads_the_three_forms_and_clamps() {
    let cases: [(&[u8], u64, RangeRequest); 11] = [
        (b"bytes=0-9".as_slice(), 100, RangeRequest::Bytes(0..10)),
        (
            b"bytes=90-200".as_slice(),
            100,
            RangeRequest::Bytes(90..100),
        ),
        (b"bytes=50-".as_slice(), 100, RangeRequest::Bytes(50..100)),
        (b"bytes=-500".as_slice(), 100, RangeRequest::Bytes(0..100)),
        (b"BYTES = 1-1".as_slice(), 100, RangeRequest::Bytes(1..2)),
        (b"bytes= 1-1 ".as_slice(), 100, RangeRequest::Bytes(1..2)),
        (b"bytes=+1-2".as_slice(), 100, RangeRequest::Unsatisfiable),
        (b"bytes=-".as_slice(), 100, RangeRequest::Unsatisfiable),
        (
            b"bytes=99999999999999999999999-".as_slice(),
            100,
            RangeRequest::Unsatisfiable,
        ),
        (
            b"bytes=0-18446744073709551615".as_slice(),
            100,
            RangeRequest::Bytes(0..100),
        ),
        (b"bytes=0-".as_slice(), 0, RangeRequest::Unsatisfiable),
    ];
    for (header, len, expected) in cases {
        let got = files::parse_range(header, len);
        assert_eq!(
            got,
            expected,
            "{} of {len}",
            String::from_utf8_lossy(header)
        );
    }
}

#[test]
fn path_segments_refuse_dot_dot_and_encoded_slashes() {
    let segments = |p| files::path_segments(p);
    assert_eq!(segments("/a/./b//c").unwrap(), ["a", "b", "c"]);
    assert_eq!(segments("/a%20b").unwrap(), ["a b"]);
    assert_eq!(segments("/a/../b"), Err(StatusCode::FORBIDDEN));
    assert_eq!(segments("/%2e%2E"), Err(StatusCode::FORBIDDEN));
    assert_eq!(segments("/%2fetc"), Err(StatusCode::FORBIDDEN));
    assert_eq!(segments("/a%00"), Err(StatusCode::FORBIDDEN));
    assert_eq!(segments("/%4"), Err(StatusCode::BAD_REQUEST));
    assert_eq!(segments("*"), Err(StatusCode::BAD_REQUEST));
}
