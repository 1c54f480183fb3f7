//! Serving the HTTP API on a listener: connections accepted here rather than by
//! `axum::serve`, which can neither time out a client that sends its headers slowly
//! nor cap the connections open.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::Service;

use crate::limits::{
    BODY_READ_TIMEOUT, ConnectionCap, HEADER_READ_TIMEOUT, MAX_HTTP_CONNECTIONS, OpenConnection,
    SHUTDOWN_GRACE,
};

/// How long clients may take and how many may be connected; the defaults are those
/// of [`crate::limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers; an idle keep-alive connection
    /// is closed after it too.
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body once it is being read; then the
    /// request is answered 408.
    pub body_read_timeout: Duration,
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Time requests in flight have to finish once shutdown starts.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            max_connections: MAX_HTTP_CONNECTIONS,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting,
/// lets requests in flight finish (for `limits.shutdown_grace` at most) and returns.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let cap = ConnectionCap::new("HTTP", limits.max_connections);
    // Every connection holds a receiver: `closed` tells when the last one is done.
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: connections already open go on,
                    // and accepting resumes once some close.
                    eprintln!("HTTP: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Dropping the stream closes it: the client sees the refusal at once rather
        // than waiting in the backlog.
        let Some(open) = cap.open() else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            router.clone(),
            limits,
            open,
            stopping.clone(),
        ));
    }
    drop(listener);
    drop(stopping);
    let _ = stop.send(true);
    if tokio::time::timeout(limits.shutdown_grace, stop.closed())
        .await
        .is_err()
    {
        eprintln!(
            "HTTP: requests still in flight after {:?}; stopping anyway",
            limits.shutdown_grace
        );
    }
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: HttpLimits,
    _open: OpenConnection,
    mut stopping: watch::Receiver<bool>,
) {
    // hyper allocates its read buffer when it first polls the connection: an idle
    // client waits here without one.
    tokio::select! {
        readable = tokio::time::timeout(limits.header_read_timeout, stream.readable()) => {
            if !matches!(readable, Ok(Ok(()))) {
                return;
            }
        }
        _ = stopping.wait_for(|stop| *stop) => return,
    }
    let body_read_timeout = limits.body_read_timeout;
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let request = request.map(|body| TimedBody {
            body,
            limit: body_read_timeout,
            deadline: None,
        });
        router.clone().call(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        // Errors are the client's: a header timeout, a reset, a malformed request.
        _ = connection.as_mut() => return,
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    // Finishes the request in flight, if any, and closes.
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// A request body that fails with [`BodyTimedOut`] when it has not all arrived
/// `limit` after it is first read. The timer starts only then, so a request whose
/// body is never read (every `GET`) costs none.
struct TimedBody {
    body: Incoming,
    limit: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The client took longer than [`HttpLimits::body_read_timeout`] to send a body.
#[derive(Debug, thiserror::Error)]
#[error("the request body took longer than {limit:?} to arrive")]
pub(crate) struct BodyTimedOut {
    pub(crate) limit: Duration,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let limit = this.limit;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(deadline.as_mut().poll(cx));
        Poll::Ready(Some(Err(BodyTimedOut { limit }.into())))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
