//! `mapview::http` over loopback: `ServeDir` and `ServeFile` mounted in an
//! axum router next to an ordinary handler, driven with hyper-util's client
//! (and raw bytes over a socket for requests a client would not send).

#![cfg(feature = "http")]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use mapview::http::{SendfileStream, ServeDir, ServeFile};
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
/// root/data.bin  root/empty.bin  root/sub/index.html  root/page.txt{,.gz,.br}
/// root/in -> data.bin         root/out -> ../secret.txt  root/abs -> /.../secret.txt
/// ```
fn tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "secret\n").unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("data.bin"), data()).unwrap();
    std::fs::write(root.join("empty.bin"), "").unwrap();
    std::fs::write(root.join("sub/index.html"), "<p>hi</p>\n").unwrap();
    std::fs::write(root.join("page.txt"), "plain").unwrap();
    std::fs::write(root.join("page.txt.gz"), "gzipped").unwrap();
    std::fs::write(root.join("page.txt.br"), "brotli").unwrap();
    std::os::unix::fs::symlink("data.bin", root.join("in")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("out")).unwrap();
    std::os::unix::fs::symlink(&secret, root.join("abs")).unwrap();
    (dir, root)
}

struct Server {
    _dir: tempfile::TempDir,
    root: PathBuf,
    addr: SocketAddr,
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// How the server writes its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// Plain `TcpStream`s: every body copied into the socket.
    Copy,
    /// `SendfileStream`s sending cached files' parts of up to this many
    /// pages with `sendfile`.
    Sendfile { max_pages: usize },
}

/// `SendfileStream`'s default.
const SENDFILE: Wire = Wire::Sendfile { max_pages: 16 };

/// Accepts connections as `SendfileStream`s, with a send buffer of a few
/// pages, so that most writes go out in part and the rest waits for the
/// socket.
struct SendfileListener {
    listener: tokio::net::TcpListener,
    max_pages: usize,
}

impl axum::serve::Listener for SendfileListener {
    type Io = SendfileStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (SendfileStream, SocketAddr) {
        use std::os::fd::AsRawFd;

        let (stream, addr) = self.listener.accept().await.unwrap();
        let bytes: libc::c_int = 16 << 10;
        // SAFETY: a valid socket and a c_int option value of its size.
        let set = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                std::ptr::from_ref(&bytes).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
        let stream = SendfileStream::new(stream).sendfile_max_pages(self.max_pages);
        (stream, addr)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Server {
    /// The tree served at `/files` with small chunks (a body is many).
    async fn start() -> Self {
        Self::start_on(Wire::Copy, |files, _| files).await
    }

    /// The tree served at `/files` by `configure(ServeDir, root)`, next to
    /// an ordinary handler at `/hello`, over connections written as `wire`
    /// says.
    async fn start_on<S>(wire: Wire, configure: impl FnOnce(ServeDir, &Path) -> S) -> Self
    where
        S: tower_service::Service<
                axum::extract::Request,
                Response = hyper::Response<mapview::http::ResponseBody>,
                Error = Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let (dir, root) = tree();
        let files = configure(ServeDir::new(&root).with_buf_chunk_size(100_000), &root);
        let router = Router::new()
            .route("/hello", get(|| async { "hello" }))
            .nest_service("/files", files);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        match wire {
            Wire::Copy => tokio::spawn(async move { axum::serve(listener, router).await }),
            Wire::Sendfile { max_pages } => {
                let listener = SendfileListener {
                    listener,
                    max_pages,
                };
                tokio::spawn(async move { axum::serve(listener, router).await })
            }
        };
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            _dir: dir,
            root,
            addr,
            client,
        }
    }

    /// The same server, asked over HTTP/2 with prior knowledge (h2c).
    fn over_http2(mut self) -> Self {
        self.client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
        self
    }

    async fn request(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        let response = self.send(method, path, headers).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> hyper::Response<hyper::body::Incoming> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::new()).unwrap();
        self.client.request(request).await.unwrap()
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

#[tokio::test]
async fn get_returns_the_whole_file_with_validators_next_to_other_routes() {
    let server = Server::start().await;
    let reply = server.get("/files/data.bin", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, data());
    assert_eq!(reply.header(header::CONTENT_LENGTH), DATA_LEN.to_string());
    assert_eq!(reply.header(header::ACCEPT_RANGES), "bytes");
    assert_eq!(
        reply.header(header::CONTENT_TYPE),
        "application/octet-stream"
    );
    assert!(reply.header(header::ETAG).starts_with('"'));
    httpdate::parse_http_date(reply.header(header::LAST_MODIFIED)).unwrap();
    assert_eq!(server.get("/hello", &[]).await.body, "hello");
}

#[tokio::test]
async fn head_has_the_headers_of_get_and_no_body() {
    let server = Server::start().await;
    let get = server.get("/files/data.bin", &[]).await;
    let head = server.request(Method::HEAD, "/files/data.bin", &[]).await;
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
    let server = Server::start().await;
    for (range, expected) in [
        ("bytes=10-19", 10..20),
        ("bytes=300000-", 300_000..len),
        ("bytes=-100", len - 100..len),
        ("bytes=5-99999999", 5..len),
        ("bytes=0-0", 0..1),
    ] {
        let reply = server.get("/files/data.bin", &[("range", range)]).await;
        assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT, "{range}");
        let content_range = format!("bytes {}-{}/{len}", expected.start, expected.end - 1);
        assert_eq!(reply.header(header::CONTENT_RANGE), content_range);
        let (start, end) = (expected.start as usize, expected.end as usize);
        assert_eq!(reply.body, data[start..end], "{range}");
        let length = (end - start).to_string();
        assert_eq!(reply.header(header::CONTENT_LENGTH), length);
    }
}

#[tokio::test]
async fn unsatisfiable_and_malformed_ranges_get_416_with_the_length() {
    let server = Server::start().await;
    for range in [
        format!("bytes={DATA_LEN}-"),
        "bytes=-0".into(),
        "bytes=20-10".into(),
        "bytes=garbage".into(),
        "bytes=1-2-3".into(),
        "nonsense".into(),
    ] {
        let reply = server.get("/files/data.bin", &[("range", &range)]).await;
        assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        let content_range = format!("bytes */{DATA_LEN}");
        assert_eq!(reply.header(header::CONTENT_RANGE), content_range);
        assert!(reply.body.is_empty());
    }
}

#[tokio::test]
async fn other_units_and_too_many_ranges_get_the_whole_file() {
    let server = Server::start().await;
    let many = format!("bytes={}", vec!["0-0"; 100].join(","));
    for range in ["items=0-5", many.as_str()] {
        let reply = server.get("/files/data.bin", &[("range", range)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{range}");
        assert_eq!(reply.body.len(), DATA_LEN);
    }
}

/// The parts of a `multipart/byteranges` body: each one's `Content-Range`
/// and bytes.
fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("a multipart type");
    let text = body.to_vec();
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut at = 0;
    loop {
        let start = at + find(&text[at..], delimiter.as_bytes()) + delimiter.len();
        if text[start..].starts_with(b"--\r\n") {
            assert_eq!(start + 4, text.len(), "nothing after the close");
            return parts;
        }
        let headers_end = start + find(&text[start..], b"\r\n\r\n");
        let headers = String::from_utf8(text[start..headers_end].to_vec()).unwrap();
        let content_range = headers
            .lines()
            .find_map(|line| line.strip_prefix("Content-Range: "))
            .expect("a Content-Range per part")
            .to_owned();
        let (first, last) = content_range
            .strip_prefix("bytes ")
            .and_then(|r| r.split_once('/'))
            .and_then(|(r, _)| r.split_once('-'))
            .unwrap();
        let len = last.parse::<usize>().unwrap() - first.parse::<usize>().unwrap() + 1;
        let data_start = headers_end + 4;
        parts.push((content_range, text[data_start..data_start + len].to_vec()));
        assert_eq!(&text[data_start + len..data_start + len + 2], b"\r\n");
        at = data_start + len;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("delimiter present")
}

#[tokio::test]
async fn several_ranges_get_a_multipart_body_that_parses_back_byte_for_byte() {
    let server = Server::start().await;
    let data = data();
    let len = DATA_LEN;
    // Out of order and overlapping: merged and sorted.
    let range = "bytes=400000-400009, 0-99, 50-199, -10";
    let reply = server.get("/files/data.bin", &[("range", range)]).await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    let length = reply
        .header(header::CONTENT_LENGTH)
        .parse::<usize>()
        .unwrap();
    assert_eq!(length, reply.body.len());
    let parts = parse_multipart(reply.header(header::CONTENT_TYPE), &reply.body);
    let expected = [(0, 200), (400_000, 400_010), (len - 10, len)];
    assert_eq!(parts.len(), expected.len());
    for ((content_range, bytes), (start, end)) in parts.into_iter().zip(expected) {
        assert_eq!(content_range, format!("bytes {start}-{}/{len}", end - 1));
        assert_eq!(bytes, data[start..end]);
    }
    let head = server
        .request(Method::HEAD, "/files/data.bin", &[("range", range)])
        .await;
    assert_eq!(head.header(header::CONTENT_LENGTH), length.to_string());
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn validators_get_304_and_failed_preconditions_412() {
    let server = Server::start().await;
    let first = server.get("/files/data.bin", &[]).await;
    let etag = first.header(header::ETAG).to_owned();
    let modified = first.header(header::LAST_MODIFIED).to_owned();
    let listed = format!("\"other\", W/{etag}");
    let long_ago = httpdate::fmt_http_date(std::time::UNIX_EPOCH);
    let cases: [(&str, &str, StatusCode); 9] = [
        ("if-none-match", &etag, StatusCode::NOT_MODIFIED),
        ("if-none-match", &listed, StatusCode::NOT_MODIFIED),
        ("if-none-match", "*", StatusCode::NOT_MODIFIED),
        ("if-none-match", "\"other\"", StatusCode::OK),
        ("if-modified-since", &modified, StatusCode::NOT_MODIFIED),
        ("if-match", &etag, StatusCode::OK),
        ("if-match", "\"other\"", StatusCode::PRECONDITION_FAILED),
        ("if-unmodified-since", &modified, StatusCode::OK),
        (
            "if-unmodified-since",
            &long_ago,
            StatusCode::PRECONDITION_FAILED,
        ),
    ];
    for (name, value, status) in cases {
        let reply = server.get("/files/data.bin", &[(name, value)]).await;
        assert_eq!(reply.status, status, "{name}: {value}");
        if status != StatusCode::OK {
            assert!(reply.body.is_empty());
            assert_eq!(reply.header(header::ETAG), etag);
        }
    }
}

#[tokio::test]
async fn if_range_honours_the_range_only_for_the_current_version() {
    let server = Server::start().await;
    let first = server.get("/files/data.bin", &[]).await;
    let etag = first.header(header::ETAG).to_owned();
    let modified = first.header(header::LAST_MODIFIED).to_owned();
    let range = ("range", "bytes=0-9");
    for current in [&etag, &modified] {
        let reply = server
            .get("/files/data.bin", &[range, ("if-range", current)])
            .await;
        assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT, "{current}");
    }
    let stale = server
        .get("/files/data.bin", &[range, ("if-range", "\"other\"")])
        .await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body.len(), DATA_LEN);
}

#[tokio::test]
async fn empty_file_is_served_with_an_empty_body() {
    let server = Server::start().await;
    let reply = server.get("/files/empty.bin", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header(header::CONTENT_LENGTH), "0");
    let range = server
        .get("/files/empty.bin", &[("range", "bytes=0-")])
        .await;
    assert_eq!(range.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(range.header(header::CONTENT_RANGE), "bytes */0");
}

#[tokio::test]
async fn paths_out_of_the_root_are_refused() {
    let server = Server::start().await;
    let refused = |status: &str| status.contains(" 403 ") || status.contains(" 404 ");
    for path in [
        "/files/../secret.txt",
        "/files/sub/../../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/sub/%2E%2E/%2e%2e/secret.txt",
        "/files/sub/..%2f..%2fsecret.txt",
        "/files/%2Ftmp",
        "/files//etc/passwd",
        "/files/%2fetc%2fpasswd",
        "/files/out",
        "/files/abs",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let status = server.raw(request.as_bytes()).await;
        assert!(refused(&status), "{path}: {status}");
    }
    // Through the client too: symlinks out and encoded dots get a 403.
    for path in ["/files/out", "/files/abs", "/files/%2e%2e/secret.txt"] {
        let reply = server.get(path, &[]).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert!(!reply.body.starts_with(b"secret"));
    }
    // A symlink that stays inside, and a directory's index, are fine.
    assert_eq!(server.get("/files/in", &[]).await.body, data());
    assert_eq!(server.get("/files/sub/", &[]).await.body, "<p>hi</p>\n");
    let dot = server.get("/files/./data.bin", &[]).await;
    assert_eq!(dot.status, StatusCode::OK);
}

#[tokio::test]
async fn a_symlink_swapped_in_for_a_directory_is_refused() {
    let server = Server::start().await;
    assert_eq!(server.get("/files/sub/", &[]).await.status, StatusCode::OK);
    let sub = server.root.join("sub");
    std::fs::rename(&sub, server.root.join("old-sub")).unwrap();
    let outside = server.root.parent().unwrap().to_owned();
    std::fs::write(outside.join("index.html"), "outside\n").unwrap();
    std::os::unix::fs::symlink(&outside, &sub).unwrap();
    let reply = server.get("/files/sub/index.html", &[]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_ne!(reply.body, "outside\n");
}

/// Swaps the paths `a` and `b` atomically (`renameat2(RENAME_EXCHANGE)`):
/// both always exist, whatever a concurrent lookup sees.
fn exchange(a: &Path, b: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes()).unwrap();
    let b = std::ffi::CString::new(b.as_os_str().as_bytes()).unwrap();
    // SAFETY: two valid C strings that outlive the call.
    let ret = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(ret, 0, "renameat2: {}", std::io::Error::last_os_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swapped_in_during_requests_never_serves_bytes_from_outside() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    const SECRET: &[u8] = b"outside the root";
    let server = Arc::new(Server::start().await);
    // root/race: a directory with an index.html, or a symlink to a
    // directory outside the root with one, swapped back and forth.
    let race = server.root.join("race");
    std::fs::create_dir(&race).unwrap();
    std::fs::write(race.join("index.html"), "inside\n").unwrap();
    let outside = server.root.parent().unwrap().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("index.html"), SECRET).unwrap();
    let swapped = server.root.join("race-swap");
    std::os::unix::fs::symlink(&outside, &swapped).unwrap();

    let running = Arc::new(AtomicBool::new(true));
    let swapper = std::thread::spawn({
        let (race, swapped, running) = (race.clone(), swapped.clone(), Arc::clone(&running));
        move || {
            let start = std::time::Instant::now();
            let mut swaps = 0u64;
            while start.elapsed() < std::time::Duration::from_millis(1500) {
                exchange(&race, &swapped);
                swaps += 1;
            }
            // An even count leaves the real directory in place.
            if swaps % 2 == 1 {
                exchange(&race, &swapped);
            }
            running.store(false, Ordering::Relaxed);
        }
    });
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (server, running) = (Arc::clone(&server), Arc::clone(&running));
            tokio::spawn(async move {
                let path = ["/files/race/index.html", "/files/race/"][client % 2];
                while running.load(Ordering::Relaxed) {
                    let reply = server.get(path, &[]).await;
                    assert!(
                        !reply.body.windows(SECRET.len()).any(|w| w == SECRET),
                        "{path}: {} served bytes from outside the root",
                        reply.status
                    );
                    match reply.status {
                        StatusCode::OK => assert_eq!(reply.body, "inside\n", "{path}"),
                        StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {}
                        status => panic!("{path}: {status}"),
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    swapper.join().unwrap();

    // Either way round, after the race: the directory is served, the
    // symlink refused.
    assert_eq!(server.get("/files/race/", &[]).await.body, "inside\n");
    exchange(&race, &swapped);
    let reply = server.get("/files/race/index.html", &[]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_ne!(reply.body, SECRET);
}

#[tokio::test]
async fn malformed_requests_get_4xx_and_the_server_goes_on() {
    let server = Server::start().await;
    let bad_requests: [&[u8]; 4] = [
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"GET /files/data.bin HTTP/1.1\r\nhost: x\r\nrange: \xff\xfe\r\nconnection: close\r\n\r\n",
        b"GET /files/bad%zzescape HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        b"GET /files/data%00.bin HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ];
    for request in bad_requests {
        let status = server.raw(request).await;
        assert!(
            status.contains(" 4"),
            "{:?}: {status}",
            String::from_utf8_lossy(request)
        );
    }
    // Headers the service cannot read are ignored, never a panic.
    for (name, value) in [
        ("if-modified-since", "\u{e9}t\u{e9} not a date"),
        ("if-none-match", "\"unterminated"),
        ("if-range", "W/"),
        ("accept-encoding", ";;;q=9,,"),
    ] {
        let request = format!(
            "GET /files/data.bin HTTP/1.1\r\nhost: x\r\n{name}: {value}\r\nconnection: close\r\n\r\n"
        );
        let status = server.raw(request.as_bytes()).await;
        assert!(status.contains(" 200 "), "{name}: {value}: {status}");
    }
    assert_eq!(server.get("/files/data.bin", &[]).await.body, data());
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let server = Server::start().await;
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let reply = server.request(method.clone(), "/files/data.bin", &[]).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.header(header::ALLOW), "GET, HEAD");
    }
}

#[tokio::test]
async fn precompressed_siblings_are_chosen_by_accept_encoding() {
    let server = Server::start_on(Wire::Copy, |files, _| {
        files
            .precompressed_gzip()
            .precompressed_br()
            .precompressed_zstd()
    })
    .await;
    let cases = [
        ("gzip, br", "brotli", Some("br")),
        ("gzip;q=1, br;q=0.5", "gzipped", Some("gzip")),
        ("zstd", "plain", None),
        ("identity", "plain", None),
    ];
    for (accept, body, encoding) in cases {
        let reply = server
            .get("/files/page.txt", &[("accept-encoding", accept)])
            .await;
        assert_eq!(reply.body, body, "{accept}");
        let got = reply.headers.get(header::CONTENT_ENCODING);
        assert_eq!(got.map(|v| v.to_str().unwrap()), encoding, "{accept}");
        assert_eq!(
            reply.header(header::CONTENT_TYPE),
            "text/plain; charset=utf-8"
        );
        assert_eq!(reply.header(header::VARY), "accept-encoding");
    }
    // Without the option, the siblings are plain files of their own.
    let plain = Server::start().await;
    let reply = plain
        .get("/files/page.txt", &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(reply.body, "plain");
    assert!(reply.headers.get(header::CONTENT_ENCODING).is_none());
}

#[tokio::test]
async fn missing_files_go_to_the_fallback_and_cache_control_is_sent() {
    let server = Server::start_on(Wire::Copy, |files, root| {
        files
            .append_index_html_on_directories(false)
            .cache_control(hyper::header::HeaderValue::from_static("max-age=60"))
            .fallback(ServeFile::new(root.join("missing-fallback.html")))
    })
    .await;
    // The fallback (a ServeFile of a missing file) answers 404 itself.
    let missing = server.get("/files/missing.bin", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let directory = server.get("/files/sub/", &[]).await;
    assert_eq!(directory.status, StatusCode::NOT_FOUND);
    let reply = server.get("/files/data.bin", &[]).await;
    assert_eq!(reply.header(header::CACHE_CONTROL), "max-age=60");

    // A single-page app: unknown paths get the index.
    let spa = Server::start_on(Wire::Copy, |files, root| {
        files.fallback(ServeFile::new(root.join("sub/index.html")))
    })
    .await;
    let reply = spa.get("/files/app/route", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "<p>hi</p>\n");
}

#[tokio::test]
async fn serve_file_serves_its_file_for_every_path() {
    let (_dir, root) = tree();
    let file = ServeFile::new(root.join("data.bin"));
    let router = Router::new().nest_service("/one", file);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    for path in ["/one", "/one/", "/one/anything"] {
        let uri = format!("http://{addr}{path}").parse().unwrap();
        let response = client.get(uri).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, data());
    }
}

#[tokio::test]
async fn a_file_truncated_while_sent_ends_the_response_with_an_error() {
    let server = Server::start().await;
    assert_a_file_cut_while_sent_ends_the_body_with_an_error(&server, false).await;
}

/// Writes `big.bin`, 64 MiB of 7s (and with `fetch_first`, fetches it
/// whole), starts a GET of it, cuts it to nothing after the first frame,
/// and checks that the body ends short with an error, with no bytes but
/// the file's (or zeros).
async fn assert_a_file_cut_while_sent_ends_the_body_with_an_error(
    server: &Server,
    fetch_first: bool,
) {
    let big = server.root.join("big.bin");
    let len = 64usize << 20;
    std::fs::write(&big, vec![7u8; len]).unwrap();
    if fetch_first {
        assert_eq!(fetch(server, "/files/big.bin").await.unwrap().len(), len);
    }
    let response = server.send(Method::GET, "/files/big.bin", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    let mut received = first.data_ref().map_or(0, Bytes::len);
    let file = std::fs::File::options().write(true).open(&big).unwrap();
    file.set_len(0).unwrap();
    let ended = loop {
        match body.frame().await {
            None => break Ok(()),
            Some(Err(error)) => break Err(error),
            Some(Ok(frame)) => {
                let data = frame.into_data().unwrap();
                assert!(data.iter().all(|&b| b == 7 || b == 0));
                received += data.len();
            }
        }
    };
    assert!(ended.is_err(), "a whole body of {received} bytes");
    assert!(received < len);
}

/// The body of a GET, or `Err` if the request or its body failed.
async fn fetch(server: &Server, path: &str) -> Result<Bytes, String> {
    let request = Request::get(format!("http://{}{path}", server.addr))
        .body(Empty::new())
        .unwrap();
    let response = server
        .client
        .request(request)
        .await
        .map_err(|e| e.to_string())?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body.to_bytes())
}

/// Writes `contents` to a new file and renames it over `path` (a new inode).
fn replace(path: &Path, contents: &str) {
    let new = path.with_extension("new");
    std::fs::write(&new, contents).unwrap();
    std::fs::rename(&new, path).unwrap();
}

#[tokio::test]
async fn a_cached_file_is_served_without_a_lookup_until_the_interval_passes() {
    let hour = std::time::Duration::from_secs(3600);
    let cached = Server::start_on(Wire::Copy, |files, _| {
        files.open_file_cache(hour, 100, 1 << 30)
    })
    .await;
    let page = cached.root.join("page.txt");
    assert_eq!(fetch(&cached, "/files/page.txt").await.unwrap(), "plain");
    replace(&page, "replaced");
    // Within the interval: the file opened before, though its name now
    // leads elsewhere.
    assert_eq!(fetch(&cached, "/files/page.txt").await.unwrap(), "plain");

    let zero = std::time::Duration::ZERO;
    let revalidated = Server::start_on(Wire::Copy, |files, _| {
        files.open_file_cache(zero, 100, 1 << 30)
    })
    .await;
    let page = revalidated.root.join("page.txt");
    assert_eq!(
        fetch(&revalidated, "/files/page.txt").await.unwrap(),
        "plain"
    );
    replace(&page, "replaced");
    assert_eq!(
        fetch(&revalidated, "/files/page.txt").await.unwrap(),
        "replaced"
    );
}

#[tokio::test]
async fn a_file_rewritten_in_place_is_served_whole_with_a_new_etag_after_the_interval() {
    use std::os::unix::fs::MetadataExt;

    let zero = std::time::Duration::ZERO;
    let server = Server::start_on(Wire::Copy, |files, _| {
        files.open_file_cache(zero, 100, 1 << 30)
    })
    .await;
    let page = server.root.join("page.txt");
    let inode = std::fs::metadata(&page).unwrap().ino();
    let before = server.get("/files/page.txt", &[]).await;
    assert_eq!(before.body, "plain");
    // The same inode, longer than the mapping cached for it.
    std::fs::write(&page, "rewritten in place").unwrap();
    assert_eq!(std::fs::metadata(&page).unwrap().ino(), inode);
    let after = server.get("/files/page.txt", &[]).await;
    assert_eq!(after.body, "rewritten in place");
    assert_ne!(after.header(header::ETAG), before.header(header::ETAG));
    let stale = [(header::IF_NONE_MATCH.as_str(), before.header(header::ETAG))];
    let revalidated = server.get("/files/page.txt", &stale).await;
    assert_eq!(revalidated.status, StatusCode::OK);
}

#[tokio::test]
async fn a_file_truncated_while_cached_gets_an_aborted_body_never_wrong_bytes() {
    let hour = std::time::Duration::from_secs(3600);
    let server = Server::start_on(Wire::Copy, |files, _| {
        files.open_file_cache(hour, 100, 1 << 30)
    })
    .await;
    assert_eq!(fetch(&server, "/files/data.bin").await.unwrap(), data());
    let file = std::fs::File::options()
        .write(true)
        .open(server.root.join("data.bin"))
        .unwrap();
    file.set_len(1000).unwrap();
    let truncated = fetch(&server, "/files/data.bin").await;
    assert!(truncated.is_err(), "{} bytes", truncated.unwrap().len());
    // Ranges inside what is left are still served from the cache.
    let head = server
        .get("/files/data.bin", &[("range", "bytes=0-99")])
        .await;
    assert_eq!(head.body, data()[..100]);
}

/// Bytes this thread has read from files so far: `read` and `sendfile`
/// count, receiving from a socket does not.
fn file_bytes_read_by_this_thread() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
    let rchar = io.lines().find_map(|line| line.strip_prefix("rchar: "));
    rchar.unwrap().parse().unwrap()
}

#[tokio::test]
async fn over_a_sendfile_stream_cached_files_are_sent_from_the_file_byte_for_byte() {
    let hour = std::time::Duration::from_secs(3600);
    let wires = [
        Wire::Copy,
        SENDFILE,
        Wire::Sendfile { max_pages: 0 },
        Wire::Sendfile { max_pages: 32 },
    ];
    for wire in wires {
        let server =
            Server::start_on(wire, |files, _| files.open_file_cache(hour, 100, 1 << 30)).await;
        let data = data();
        // The first request maps the file; later ones are slices of that
        // mapping, written by this thread (the server's worker).
        assert_eq!(fetch(&server, "/files/data.bin").await.unwrap(), data);
        // Parts of up to `max_pages` pages go out with sendfile; longer
        // ones are copied, and so is what is left of them after a short
        // write (the send buffer holds a few pages).
        for (first, last) in [(0, 65_535), (4096, 4096 + 70_000)] {
            let before = file_bytes_read_by_this_thread();
            let range = format!("bytes={first}-{last}");
            let reply = server.get("/files/data.bin", &[("range", &range)]).await;
            assert_eq!(reply.body, data[first..=last]);
            let read = file_bytes_read_by_this_thread() - before;
            let len = (last - first + 1) as u64;
            let pages = (last + 1).div_ceil(4096) - first / 4096;
            let context = format!("{wire:?}, {range}: {read} bytes read");
            match wire {
                Wire::Sendfile { max_pages } if pages <= max_pages => {
                    assert!(read >= len, "{context}")
                }
                _ => assert!(read < 4096, "{context}"),
            }
        }
        let one = server
            .get("/files/data.bin", &[("range", "bytes=1000-70000")])
            .await;
        assert_eq!(one.body, data[1000..=70000]);
        assert_three_ranges_of_data_in_one_response(&server).await;
        assert_eq!(fetch(&server, "/files/page.txt").await.unwrap(), "plain");
        assert_eq!(fetch(&server, "/hello").await.unwrap(), "hello");
    }
}

#[tokio::test]
async fn over_a_sendfile_stream_a_cached_file_cut_while_sent_ends_the_response_with_an_error() {
    let hour = std::time::Duration::from_secs(3600);
    // Chunks of 16 pages: each goes out with sendfile.
    let server = Server::start_on(SENDFILE, |files, _| {
        files
            .with_buf_chunk_size(64 << 10)
            .open_file_cache(hour, 100, 1 << 30)
    })
    .await;
    // Cached, so its 16-page chunks go out with sendfile, which then finds
    // the file ended.
    assert_a_file_cut_while_sent_ends_the_body_with_an_error(&server, true).await;
}

#[tokio::test]
async fn over_http2_a_sendfile_stream_sends_cached_files_from_the_file_byte_for_byte() {
    let hour = std::time::Duration::from_secs(3600);
    let server = Server::start_on(SENDFILE, |files, _| {
        files.open_file_cache(hour, 100, 1 << 30)
    })
    .await
    .over_http2();
    let response = server.send(Method::GET, "/hello", &[]).await;
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    let data = data();
    assert_eq!(fetch(&server, "/files/data.bin").await.unwrap(), data);
    // HTTP/2 sends the body in DATA frames of at most 16 KiB (the default
    // frame size), so every part fits in 16 pages. h2 copies each frame's
    // head and the first 247 bytes of its payload into its own buffer (256
    // bytes in all) and hands over the rest, which goes out with sendfile.
    let before = file_bytes_read_by_this_thread();
    let reply = server.get("/files/data.bin", &[]).await;
    assert_eq!(reply.body, data);
    let read = file_bytes_read_by_this_thread() - before;
    assert!(read >= DATA_LEN as u64 * 19 / 20, "{read} bytes read");
    assert_three_ranges_of_data_in_one_response(&server).await;
    assert_eq!(fetch(&server, "/files/page.txt").await.unwrap(), "plain");
    assert_a_file_cut_while_sent_ends_the_body_with_an_error(&server, true).await;
}

/// Three ranges of `data.bin` in one request: a multipart body, each part
/// byte for byte.
async fn assert_three_ranges_of_data_in_one_response(server: &Server) {
    let several = "bytes=0-9, 4000-300000, -5";
    let reply = server.get("/files/data.bin", &[("range", several)]).await;
    let parts = parse_multipart(reply.header(header::CONTENT_TYPE), &reply.body);
    let expected = [(0, 10), (4000, 300_001), (DATA_LEN - 5, DATA_LEN)];
    assert_eq!(parts.len(), expected.len());
    let data = data();
    for ((_, bytes), (start, end)) in parts.into_iter().zip(expected) {
        assert_eq!(bytes, data[start..end]);
    }
}

/// The address ranges of this process's mappings of the file at `path`
/// (as /proc/self/maps names it: resolved).
fn mappings_of(path: &Path) -> Vec<std::ops::Range<usize>> {
    common::mappings_of(&path.canonicalize().unwrap())
}

/// A range request answered by calling `files` directly, body not read.
async fn call_range(
    files: &mut ServeDir,
    path: &str,
    range: &str,
) -> hyper::Response<mapview::http::ResponseBody> {
    use tower_service::Service;
    let request = Request::get(path).header("range", range).body(()).unwrap();
    let Ok(response) = files.call(request).await;
    response
}

#[tokio::test]
async fn ranges_of_a_cached_file_are_slices_of_one_mapping() {
    let (_dir, root) = tree();
    let hour = std::time::Duration::from_secs(3600);
    let mut files = ServeDir::new(&root)
        .with_buf_chunk_size(4096)
        .open_file_cache(hour, 100, 1 << 30);
    let data = data();
    let mut bodies = Vec::new();
    for i in 0..8 {
        let start = i * 50_000 + 1;
        let range = format!("bytes={start}-{}", start + 99_999);
        let response = call_range(&mut files, "/data.bin", &range).await;
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        bodies.push((start, response.into_body()));
    }
    // Eight live bodies, each a stream of its own, and one mapping.
    assert_eq!(mappings_of(&root.join("data.bin")).len(), 1);
    for (start, body) in bodies {
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, data[start..start + 100_000]);
    }
}

#[tokio::test]
async fn a_revalidated_unchanged_file_keeps_its_mapping_and_a_replaced_one_is_mapped_anew() {
    let (_dir, root) = tree();
    let data_path = root.join("data.bin");
    // Every request revalidates: a lookup and an fstat on the blocking pool.
    let mut files = ServeDir::new(&root).open_file_cache(std::time::Duration::ZERO, 100, 1 << 30);
    let first = call_range(&mut files, "/data.bin", "bytes=0-9").await;
    let mapped = mappings_of(&data_path);
    assert_eq!(mapped.len(), 1);
    let second = call_range(&mut files, "/data.bin", "bytes=10-19").await;
    assert_eq!(mappings_of(&data_path), mapped, "the same mapping");
    let etag = first.headers()["etag"].clone();
    assert_eq!(etag, second.headers()["etag"]);
    drop((first, second));

    let replaced = data().iter().map(|b| b ^ 0xff).collect::<Vec<u8>>();
    let new = root.join("data.new");
    std::fs::write(&new, &replaced).unwrap();
    std::fs::rename(&new, &data_path).unwrap();
    let third = call_range(&mut files, "/data.bin", "bytes=0-9").await;
    assert_ne!(third.headers()["etag"], etag);
    let bytes = third.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes, replaced[..10]);
}

#[test]
fn revalidating_a_cached_file_needs_no_trip_to_the_blocking_pool() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_dir, root) = tree();
        // Every request finds its entry stale and checks the file again.
        let mut files =
            ServeDir::new(&root).open_file_cache(std::time::Duration::ZERO, 100, 1 << 30);
        let first = call_range(&mut files, "/data.bin", "bytes=0-9").await;
        assert_eq!(first.status(), StatusCode::PARTIAL_CONTENT);
        // The only blocking thread is taken until the check is done.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::task::spawn_blocking(move || held.recv());
        let check = call_range(&mut files, "/data.bin", "bytes=10-19");
        let second = tokio::time::timeout(std::time::Duration::from_secs(20), check)
            .await
            .expect("the check waited for the blocking pool");
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        let bytes = second.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes, data()[10..20]);
    });
}

#[test]
fn a_cached_file_whose_pages_were_evicted_is_faulted_in_off_the_worker() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_dir, root) = tree();
    let path = root.join("data.bin");
    let hour = std::time::Duration::from_secs(3600);
    let mut files = ServeDir::new(&root).open_file_cache(hour, 100, 1 << 30);
    // Cached, and mapped once (on the blocking pool).
    let first = runtime.block_on(call_range(&mut files, "/data.bin", "bytes=0-9"));
    let body = runtime.block_on(first.into_body().collect()).unwrap();
    assert_eq!(body.to_bytes(), data()[..10]);
    // Memory pressure takes the file's pages.
    common::evict_mapped(&path);
    assert_eq!(common::resident_pages(&path, 0..DATA_LEN), 0);

    let faults = common::major_faults_of_this_thread();
    let response = runtime.block_on(call_range(&mut files, "/data.bin", "bytes=300000-300099"));
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let mut body = response.into_body();
    let _guard = runtime.enter();
    let mut frame = tokio_test::task::spawn(body.frame());
    {
        let _paused = mapview::Pager::current().pause();
        // Not resident: the body waits for the pager, the worker never
        // faults the pages in from the disk.
        assert!(frame.poll().is_pending());
    }
    common::eventually("the pager faults the range in", || frame.is_woken());
    let frame = match frame.poll() {
        std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap(),
        other => panic!("no data: {other:?}"),
    };
    assert_eq!(frame, data()[300_000..300_100]);
    assert_eq!(common::major_faults_of_this_thread() - faults, 0);
}
