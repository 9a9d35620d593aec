//! Connections the API accepts, guarded against clients that hold them without using them
//! (slow-loris: a request head sent one byte a second, or opened and left):
//! - at most [`PER_CLIENT`] open connections per client address and [`TOTAL`] in all; a
//!   connection over either is closed at once;
//! - a connection must make progress: the server writes, or the client sends at least
//!   [`PROGRESS_BYTES`], within every [`PROGRESS_WINDOW`]; otherwise it is closed. Idle
//!   keep-alive connections close after that window too; event streams send keep-alive
//!   comments every 15 s, and uploads send far more than a KiB in a window.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// Open connections one client address may hold.
pub const PER_CLIENT: usize = 256;
/// Open connections in all.
pub const TOTAL: usize = 8192;
/// A connection without progress for this long is closed.
pub const PROGRESS_WINDOW: Duration = Duration::from_secs(60);
/// Bytes from the client that count as progress.
pub const PROGRESS_BYTES: usize = 1024;

/// Open connections per client address.
#[derive(Default)]
struct Counts {
    per_client: HashMap<IpAddr, usize>,
    total: usize,
}

/// A TCP listener for `axum::serve` that applies the limits above.
pub struct GuardedListener {
    inner: TcpListener,
    counts: Arc<Mutex<Counts>>,
    window: Duration,
}

impl GuardedListener {
    pub fn new(inner: TcpListener) -> Self {
        Self { inner, counts: Arc::default(), window: PROGRESS_WINDOW }
    }

    /// Another progress window than [`PROGRESS_WINDOW`] (tests).
    pub fn window(self, window: Duration) -> Self {
        Self { window, ..self }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = Guarded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let admitted = {
                let mut counts = self.counts.lock().expect("connection counts");
                let mine = counts.per_client.get(&addr.ip()).copied().unwrap_or(0);
                let ok = mine < PER_CLIENT && counts.total < TOTAL;
                if ok {
                    counts.per_client.insert(addr.ip(), mine + 1);
                    counts.total += 1;
                }
                ok
            };
            if !admitted {
                tracing::debug!(client = %addr.ip(), "connection refused: too many open");
                continue; // dropping the stream closes it
            }
            let permit = Permit { counts: self.counts.clone(), client: addr.ip() };
            return (Guarded::new(stream, permit, self.window), addr);
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Releases a connection's place in the counts when it closes.
struct Permit {
    counts: Arc<Mutex<Counts>>,
    client: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.total -= 1;
            if let Some(n) = counts.per_client.get_mut(&self.client) {
                *n -= 1;
                if *n == 0 {
                    counts.per_client.remove(&self.client);
                }
            }
        }
    }
}

/// A connection that fails its reads once it has made no progress for a window.
pub struct Guarded {
    stream: TcpStream,
    window: Duration,
    deadline: Pin<Box<Sleep>>,
    received: usize,
    _permit: Permit,
}

impl Guarded {
    fn new(stream: TcpStream, permit: Permit, window: Duration) -> Self {
        let _ = stream.set_nodelay(true);
        let deadline = Box::pin(tokio::time::sleep(window));
        Self { stream, window, deadline, received: 0, _permit: permit }
    }

    fn progress(&mut self) {
        self.received = 0;
        let next = Instant::now() + self.window;
        self.deadline.as_mut().reset(next);
    }
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                self.received += buf.filled().len() - before;
                if self.received >= PROGRESS_BYTES {
                    self.progress();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no progress on the connection: closed",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.progress();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.progress();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
