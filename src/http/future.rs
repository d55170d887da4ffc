//! [`ResponseFuture`]: the future of a service's response.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use super::body::ResponseBody;
use super::exclusive::Exclusive;

type Boxed = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

/// The response future of [`ServeDir`](super::ServeDir) and
/// [`ServeFile`](super::ServeFile). It never fails: every problem is a 4xx
/// or 5xx response.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use mapview::http::{ResponseFuture, ServeFile};
/// use tower_service::Service;
///
/// let request = http::Request::get("/").body(()).unwrap();
/// let future: ResponseFuture = ServeFile::new("no/such/file").call(request);
/// let Ok(response) = future.await;
/// assert_eq!(response.status(), http::StatusCode::NOT_FOUND);
/// # }
/// ```
pub struct ResponseFuture(Exclusive<Boxed>);

impl ResponseFuture {
    pub(crate) fn new(
        future: impl Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + 'static,
    ) -> Self {
        Self(Exclusive::new(Box::pin(future)))
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.get_mut().as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
