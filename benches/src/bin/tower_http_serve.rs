//! tower-http's `ServeDir` on hyper 1, the server a user of axum or tower
//! would reach for: the baseline that `benches/serve_bench.sh` compares
//! `mapview::http` with. Served as the `serve` example serves: one task per
//! connection, HTTP/1.1 with keep-alive, `TCP_NODELAY`.
//!
//! `cargo run --release -p mapview-benches --bin tower_http_serve -- ADDR ROOT`

use std::io;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;

#[tokio::main]
async fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(root), None) = (args.next(), args.next(), args.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: tower_http_serve ADDR ROOT",
        ));
    };
    let listener = TcpListener::bind(&addr).await?;
    let service = TowerToHyperService::new(ServeDir::new(root));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                eprintln!("accept: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        stream.set_nodelay(true)?;
        let service = service.clone();
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
