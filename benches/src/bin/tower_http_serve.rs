//! tower-http's `ServeDir` on hyper 1, the server a user of axum or tower
//! would reach for: the baseline that `benches/serve_bench.sh` compares
//! `mapview::http` with. Served as the `serve` example serves: one task per
//! connection, HTTP/1.1 with keep-alive, `TCP_NODELAY`.
//!
//! `cargo run --release -p mapview-benches --bin tower_http_serve -- ADDR ROOT`

#[path = "../http_server.rs"]
mod http_server;

use std::io;

use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;

#[tokio::main]
async fn main() -> io::Result<()> {
    let (addr, root) = http_server::addr_and_root("tower_http_serve")?;
    let listener = TcpListener::bind(&addr).await?;
    http_server::serve(listener, TowerToHyperService::new(ServeDir::new(root))).await
}
