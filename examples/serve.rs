//! A static file server on hyper 1 over `mapview::http`: response bodies
//! are mapview's zero-copy `Bytes` chunks, which point into a mapping of
//! the file, and only pages that the background prefetcher made resident
//! are handed out, so a worker thread never waits on the disk.
//!
//! ```sh
//! cargo run --release --features http --example serve -- [--addr 127.0.0.1:8080] [PATH]
//!     [--chunk-kib N] [--open-file-cache SECS] [--copy | --sendfile-max-pages N]
//! ```
//!
//! Serves the file or directory tree at PATH (nothing outside it: `..`,
//! encoded slashes and symlinks that lead out are refused) with
//! [`ServeDir`] or [`ServeFile`]. Without PATH it makes a 1 GiB sample file
//! in a temporary directory (removed on Ctrl-C). `--chunk-kib` sets the
//! body chunk size (default 256 KiB); `--open-file-cache SECS` shares
//! opened files across requests for that long (see
//! `ServeDir::open_file_cache`). Connections are `SendfileStream`s, so
//! cached files go out with `sendfile` (parts of up to 16 pages, or
//! `--sendfile-max-pages`); `--copy` writes plain `TcpStream`s instead
//! (every body copied), for comparison. `benches/serve_bench.sh`
//! compares it with tower-http's `ServeDir` and nginx.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use mapview::http::{SendfileStream, ServeDir, ServeFile};
use tokio::net::TcpListener;
use tower_service::Service;

/// Files kept open with `--open-file-cache` (nginx's examples use 1000s;
/// the cache holds descriptors, not mappings).
const CACHED_FILES: usize = 16_384;

struct Args {
    addr: SocketAddr,
    chunk_size: Option<usize>,
    cache_for: Option<Duration>,
    wire: Wire,
    path: Option<PathBuf>,
}

/// How connections are written.
#[derive(Debug, Clone, Copy)]
enum Wire {
    /// Plain `TcpStream`s: every body copied into the socket.
    Copy,
    /// `SendfileStream`s, sending parts of at most this many pages (or
    /// their default) with `sendfile`.
    Sendfile(Option<usize>),
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        chunk_size: None,
        cache_for: None,
        wire: Wire::Sendfile(None),
        path: None,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--addr" => {
                let addr = argv.next().ok_or("--addr needs a value")?;
                args.addr = addr.parse().map_err(|e| format!("--addr {addr}: {e}"))?;
            }
            "--chunk-kib" => {
                let kib = argv.next().and_then(|n| n.parse::<usize>().ok());
                let kib = kib.ok_or("--chunk-kib needs a number")?;
                args.chunk_size = Some(kib << 10);
            }
            "--open-file-cache" => {
                let secs = argv.next().and_then(|n| n.parse::<f64>().ok());
                let secs = secs.filter(|s| s.is_finite() && *s >= 0.0);
                let secs = secs.ok_or("--open-file-cache needs a number of seconds")?;
                args.cache_for = Some(Duration::from_secs_f64(secs));
            }
            "--copy" => args.wire = Wire::Copy,
            "--sendfile-max-pages" => {
                let pages = argv.next().and_then(|n| n.parse::<usize>().ok());
                let pages = pages.ok_or("--sendfile-max-pages needs a number")?;
                args.wire = Wire::Sendfile(Some(pages));
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            path if args.path.is_none() => args.path = Some(path.into()),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    Ok(args)
}

/// Writes `len` bytes of a repeating pattern to `path`.
fn make_sample(path: &Path, len: u64) -> io::Result<()> {
    let block: Vec<u8> = (0..1u32 << 20).map(|i| (i * 131 + 7) as u8).collect();
    let mut file = std::fs::File::create(path)?;
    for _ in 0..len / block.len() as u64 {
        file.write_all(&block)?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let args = parse_args().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // Without PATH: a sample in a temporary directory, removed at the end.
    let sample_dir;
    let path = match args.path {
        Some(path) => path,
        None => {
            sample_dir = tempfile::tempdir()?;
            let path = sample_dir.path().join("sample-1GiB.bin");
            println!("writing a 1 GiB sample file to {}", path.display());
            make_sample(&path, 1 << 30)?;
            path
        }
    };
    let listener = TcpListener::bind(args.addr).await?;
    let url = match path.is_file() {
        true => format!(
            "/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        ),
        false => "/".into(),
    };
    let addr = listener.local_addr()?;
    println!("serving {} at http://{addr}{url}", path.display());
    let server = async {
        if path.is_file() {
            let mut file = ServeFile::new(&path);
            if let Some(bytes) = args.chunk_size {
                file = file.with_buf_chunk_size(bytes);
            }
            if let Some(valid_for) = args.cache_for {
                file = file.open_file_cache(valid_for, 1, u64::MAX);
            }
            serve(listener, args.wire, move |request| {
                file.clone().call(request)
            })
            .await
        } else {
            let mut dir = ServeDir::new(&path);
            if let Some(bytes) = args.chunk_size {
                dir = dir.with_buf_chunk_size(bytes);
            }
            if let Some(valid_for) = args.cache_for {
                dir = dir.open_file_cache(valid_for, CACHED_FILES, u64::MAX);
            }
            serve(listener, args.wire, move |request| {
                dir.clone().call(request)
            })
            .await
        }
    };
    tokio::select! {
        result = server => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Answers the requests of every connection on `listener` with `handle`,
/// one task per connection (HTTP/1.1, keep-alive), until dropped, over
/// connections written as `wire` says.
async fn serve<H, F, B>(listener: TcpListener, wire: Wire, handle: H) -> io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: wait, don't spin.
            Err(error) => {
                eprintln!("accept: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Send each chunk when it is ready (nginx: tcp_nodelay on).
        stream.set_nodelay(true)?;
        match wire {
            Wire::Copy => spawn_connection(stream, handle.clone()),
            // Cached files' bytes go out with sendfile (nginx: sendfile on).
            Wire::Sendfile(max_pages) => {
                let mut stream = SendfileStream::new(stream);
                if let Some(pages) = max_pages {
                    stream = stream.sendfile_max_pages(pages);
                }
                spawn_connection(stream, handle.clone())
            }
        }
    }
}

/// Answers the requests of one connection with `handle`, in a task.
fn spawn_connection<S, H, F, B>(stream: S, handle: H)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Send + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        // Errors here are clients going away mid-response, or bad requests
        // that hyper already answered with a 4xx.
        let _ = http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service_fn(handle))
            .await;
    });
}
