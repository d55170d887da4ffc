//! What the HTTP servers of `benches/serve_bench.sh` share besides the
//! service they run: their command line, `ADDR ROOT`, and their connection
//! loop, the one `examples/serve.rs` runs (one task per connection,
//! HTTP/1.1 with keep-alive, `TCP_NODELAY`), so that they differ from the
//! example in the service alone.

use std::error::Error;
use std::io;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// The two arguments, ADDR and ROOT, of the program named `name`.
///
/// # Errors
///
/// `InvalidInput` with the usage when there are not exactly two.
pub fn addr_and_root(name: &str) -> io::Result<(String, String)> {
    let mut args = std::env::args().skip(1);
    match (args.next(), args.next(), args.next()) {
        (Some(addr), Some(root), None) => Ok((addr, root)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("usage: {name} ADDR ROOT"),
        )),
    }
}

/// Answers every connection on `listener` with `service` until dropped.
///
/// # Errors
///
/// Setting `TCP_NODELAY` on an accepted connection failed.
pub async fn serve<S>(listener: TcpListener, service: S) -> io::Result<()>
where
    S: HttpService<Incoming> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<Box<dyn Error + Send + Sync>>,
    S::ResBody: Send + 'static,
    <S::ResBody as Body>::Data: Send,
    <S::ResBody as Body>::Error: Into<Box<dyn Error + Send + Sync>>,
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
        stream.set_nodelay(true)?;
        let service = service.clone();
        tokio::spawn(async move {
            // Errors here are clients going away mid-response.
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
