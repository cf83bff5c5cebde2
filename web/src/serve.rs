//! Serving a `Router` on a local listener, with what `axum::serve` leaves out: a time limit on reading a
//! request's headers (hyper's, which also ends keep-alive connections that send nothing), an idle limit on every
//! connection's reads and writes (a client that stops reading its answer), a cap on open connections, and a
//! shutdown that lets requests in flight finish but waits for them no longer than `shutdown_grace`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeSettings {
    /// How long a client has to send a request's headers, counted from when the connection is ready for one
    /// (so it also closes a keep-alive connection that sends nothing for this long).
    pub header_read_timeout: Duration,
    /// How long a connection may make no progress reading or writing.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listener's backlog.
    pub max_connections: usize,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for ServeSettings {
    fn default() -> ServeSettings {
        ServeSettings {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1_024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets each connection finish the
/// request it is serving (closing idle ones at once), and returns when all are done or `shutdown_grace` has
/// passed, whichever is first.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
    settings: ServeSettings,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let (stopping, stop) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let io = TokioIo::new(Box::pin(Idle::new(stream, settings.idle_timeout)));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout);
            let connection = builder.serve_connection(io, service);
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
        // Reap the finished ones as we go.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stopping.send(true);
    let drained =
        tokio::time::timeout(settings.shutdown_grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            grace_secs = settings.shutdown_grace.as_secs(),
            "requests still in flight after the shutdown grace; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

pin_project_lite::pin_project! {
    /// A stream that fails a read or write that has made no progress for `limit`.
    struct Idle<S> {
        #[pin]
        inner: S,
        #[pin]
        deadline: Sleep,
        limit: Duration,
    }
}

impl<S> Idle<S> {
    fn new(inner: S, limit: Duration) -> Idle<S> {
        Idle { inner, deadline: tokio::time::sleep(limit), limit }
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the connection made no progress for too long")
}

impl<S> Idle<S> {
    /// After a step of `poll`: progress moves the deadline; waiting past it is an error.
    fn step<T>(self: Pin<&mut Self>, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let this = self.project();
        match poll {
            Poll::Ready(ready) => {
                let limit = *this.limit;
                this.deadline.reset(Instant::now() + limit);
                Poll::Ready(ready)
            }
            Poll::Pending => {
                ready!(this.deadline.poll(cx));
                Poll::Ready(Err(idle_error()))
            }
        }
    }
}

impl<S: AsyncRead> AsyncRead for Idle<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let poll = self.as_mut().project().inner.poll_read(cx, buf);
        self.step(cx, poll)
    }
}

impl<S: AsyncWrite> AsyncWrite for Idle<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = self.as_mut().project().inner.poll_write(cx, buf);
        self.step(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = self.as_mut().project().inner.poll_flush(cx);
        self.step(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = self.as_mut().project().inner.poll_shutdown(cx);
        self.step(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = self.as_mut().project().inner.poll_write_vectored(cx, bufs);
        self.step(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn started(
        settings: ServeSettings,
    ) -> (std::net::SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "hello" })).route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
        let (quit, mut quitting) = watch::channel(false);
        let server = tokio::spawn(async move {
            serve(
                listener,
                app,
                async move {
                    let _ = quitting.wait_for(|q| *q).await;
                },
                settings,
            )
            .await
            .unwrap();
        });
        (addr, quit, server)
    }

    /// Reads until the server closes the connection; false if it is still open after `within`.
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        let mut sink = Vec::new();
        tokio::time::timeout(within, stream.read_to_end(&mut sink)).await.is_ok()
    }

    #[tokio::test]
    async fn given_connections_that_never_finish_their_headers_then_each_is_closed_at_the_header_timeout() {
        let settings = ServeSettings { header_read_timeout: Duration::from_millis(300), ..Default::default() };
        let (addr, _quit, _server) = started(settings).await;
        let mut clients = Vec::new();
        for _ in 0..50 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
            clients.push(c);
        }
        for c in &mut clients {
            assert!(closed_within(c, Duration::from_secs(3)).await, "a connection outlived the header timeout");
        }
        // and the server still answers
        let ok = reqwest::get(format!("http://{addr}/")).await.unwrap();
        assert_eq!(ok.text().await.unwrap(), "hello");
    }

    #[tokio::test]
    async fn given_an_idle_keep_alive_connection_then_it_is_closed() {
        let settings = ServeSettings { header_read_timeout: Duration::from_millis(300), ..Default::default() };
        let (addr, _quit, _server) = started(settings).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut first = [0u8; 12];
        c.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        assert!(closed_within(&mut c, Duration::from_secs(3)).await);
    }

    #[tokio::test]
    async fn given_a_client_that_stops_reading_then_its_connection_is_closed_at_the_idle_limit() {
        let settings = ServeSettings { idle_timeout: Duration::from_millis(300), ..Default::default() };
        let (addr, _quit, _server) = started(settings).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        // Pipelined requests whose answers the client never reads fill the socket's buffers.
        let many = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(100_000);
        let _ = tokio::time::timeout(Duration::from_secs(3), c.write_all(many.as_bytes())).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(closed_within(&mut c, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn given_a_request_in_flight_at_shutdown_then_the_server_stops_within_the_grace() {
        let settings = ServeSettings { shutdown_grace: Duration::from_millis(500), ..Default::default() };
        let (addr, quit, server) = started(settings).await;
        let slow = tokio::spawn(reqwest::get(format!("http://{addr}/slow")));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let asked = std::time::Instant::now();
        quit.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(3), server).await.expect("stopped within the grace").unwrap();
        assert!(asked.elapsed() < Duration::from_secs(2), "{:?}", asked.elapsed());
        assert!(slow.await.unwrap().is_err(), "the slow request was cut off, not answered");
    }
}
