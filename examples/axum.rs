//! `mapview::http::ServeDir` mounted in an axum router next to an ordinary
//! handler, as tower-http's would be.
//!
//! ```sh
//! cargo run --features http --example axum -- [--addr 127.0.0.1:8080] [DIR]
//! ```
//!
//! Serves the files under DIR (default: this crate's `src`) at `/files/`,
//! and a greeting at `/`. Connections are `SendfileStream`s, so the bytes
//! of cached files go out with `sendfile` (as nginx's `sendfile on`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use mapview::http::{SendfileStream, ServeDir};
use tokio::net::TcpListener;

/// Accepts connections as `SendfileStream`s.
struct SendfileListener(TcpListener);

impl axum::serve::Listener for SendfileListener {
    type Io = SendfileStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (SendfileStream, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    // Send each response when it is ready (nginx: tcp_nodelay on).
                    let _ = stream.set_nodelay(true);
                    return (SendfileStream::new(stream), addr);
                }
                // Out of file descriptors and the like: wait, don't spin.
                Err(error) => {
                    eprintln!("accept: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => {
                let value = args.next().unwrap_or_default();
                addr = value.parse().map_err(std::io::Error::other)?;
            }
            path => dir = path.into(),
        }
    }
    let files = ServeDir::new(&dir)
        .precompressed_br()
        .precompressed_gzip()
        .open_file_cache(Duration::from_secs(1), 1024, 1 << 30);
    let app = Router::new()
        .route(
            "/",
            get(|| async { "hello; the files are under /files/\n" }),
        )
        .nest_service("/files", files);
    let listener = SendfileListener(TcpListener::bind(addr).await?);
    println!(
        "serving {} at http://{}/files/",
        dir.display(),
        listener.0.local_addr()?
    );
    axum::serve(listener, app).await
}
