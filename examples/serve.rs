//! A static file server on hyper 1 whose response bodies are mapview's
//! zero-copy `Bytes` chunks: they point into a mapping of the file, and only
//! pages that the background prefetcher made resident are handed out, so a
//! worker thread never waits on the disk.
//!
//! ```sh
//! cargo run --release --example serve -- [--addr 127.0.0.1:8080] [PATH]
//!     [--backend mapview|tokio-fs] [--chunk-kib N]
//! ```
//!
//! Serves the file or directory tree at PATH (nothing outside it: `..`,
//! encoded slashes and symlinks that lead out are refused). Without PATH it
//! makes a 1 GiB sample file in a temporary directory (removed on Ctrl-C).
//! GET and HEAD, single byte ranges (206, 416), `ETag` / `If-None-Match` and
//! `Last-Modified` / `If-Modified-Since` (304). `--backend tokio-fs` serves
//! the same with `tokio::fs::File` + `ReaderStream`, for comparison
//! (`benches/serve_bench.sh`); `--chunk-kib` sets the body chunk size
//! (default 256 KiB for mapview, 64 KiB, tower-http's, for tokio-fs).

#[path = "serve/files.rs"]
mod files;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use files::{Backend, Site};

struct Args {
    addr: SocketAddr,
    backend: Backend,
    chunk_size: Option<usize>,
    path: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        backend: Backend::Mapview,
        chunk_size: None,
        path: None,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--addr" => {
                let addr = argv.next().ok_or("--addr needs a value")?;
                args.addr = addr.parse().map_err(|e| format!("--addr {addr}: {e}"))?;
            }
            "--backend" => {
                args.backend = match argv.next().as_deref() {
                    Some("mapview") => Backend::Mapview,
                    Some("tokio-fs") => Backend::TokioFs,
                    _ => return Err("--backend is mapview or tokio-fs".into()),
                }
            }
            "--chunk-kib" => {
                let kib = argv.next().and_then(|n| n.parse::<usize>().ok());
                let kib = kib.ok_or("--chunk-kib needs a number")?;
                args.chunk_size = Some(kib << 10);
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
    let mut site = Site::new(&path, args.backend)?;
    if let Some(bytes) = args.chunk_size {
        site = site.chunk_size(bytes);
    }
    let site = Arc::new(site);
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!(
        "serving {} ({:?}) at http://{}{}",
        path.display(),
        args.backend,
        listener.local_addr()?,
        site.url_path()
    );
    tokio::select! {
        result = files::serve(listener, site) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
