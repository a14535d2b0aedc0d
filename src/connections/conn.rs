//! One accepted gRPC connection: the socket, plus the two ways the daemon
//! ends it from outside HTTP/2 — the idle timeout and the forced close at
//! the end of the shutdown grace. Both act the same way: a read sees end
//! of file (and, forced, any write fails), so hyper ends the connection
//! and drops the socket, whether or not the client is reading.
//!
//! The idle close sends no GOAWAY (tonic does not let a single connection
//! be shut down gracefully). So it happens only when the socket has nothing
//! to read and has had nothing for [`QUIET`]: a call that was on its way is
//! not cut, and one that races the close was never received, so the client
//! may retry it (tonic reconnects by itself).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::Shared;

/// How long a connection must have read nothing before it is closed idle:
/// hyper starts a call's service in a task of its own, so a request read a
/// moment ago may not be counted as open yet.
const QUIET: std::time::Duration = std::time::Duration::from_secs(1);

/// What a request knows of its connection (a request extension, set by
/// tonic from [`tonic::transport::server::Connected`]).
#[derive(Debug, Clone)]
pub struct ConnInfo(Arc<CallCount>);

/// The calls open on one connection, and since when none has been.
#[derive(Debug)]
struct CallCount {
    born: Instant,
    open: AtomicUsize,
    /// Milliseconds from `born` to when the last call ended.
    idle_since_ms: AtomicU64,
}

impl ConnInfo {
    /// Counts a call until the returned guard is dropped.
    pub fn call_opened(&self) -> CallGuard {
        self.0.open.fetch_add(1, Ordering::AcqRel);
        CallGuard(self.0.clone())
    }
}

/// One open call on a connection; dropping it ends the call.
#[derive(Debug)]
pub struct CallGuard(Arc<CallCount>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        let count = &self.0;
        if count.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            let ms = count.born.elapsed().as_millis();
            count
                .idle_since_ms
                .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Release);
        }
    }
}

/// An accepted connection, handed to tonic.
pub struct Conn {
    tcp: TcpStream,
    peer: SocketAddr,
    calls: ConnInfo,
    shared: Arc<Shared>,
    /// Fires to check whether the connection has been idle long enough.
    idle: Option<Pin<Box<Sleep>>>,
    forced: Pin<Box<WaitForCancellationFutureOwned>>,
    /// When the socket last gave bytes.
    last_read: Instant,
    /// Once decided, the connection stays closed.
    ended: bool,
}

impl Conn {
    pub(super) fn new(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>) -> Self {
        let born = Instant::now();
        let idle = shared
            .limits
            .idle_timeout
            .map(|timeout| Box::pin(tokio::time::sleep_until(born + timeout)));
        Self {
            tcp,
            peer,
            calls: ConnInfo(Arc::new(CallCount {
                born,
                open: AtomicUsize::new(0),
                idle_since_ms: AtomicU64::new(0),
            })),
            forced: Box::pin(shared.close.clone().cancelled_owned()),
            shared,
            idle,
            last_read: born,
            ended: false,
        }
    }

    /// Whether the connection is closed, or forced to close now (the
    /// task is registered to learn of the forced close).
    fn forced(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.ended && self.forced.as_mut().poll(cx).is_ready() {
            self.ended = true;
        }
        self.ended
    }

    /// Whether the connection has been idle long enough to close, checked
    /// when its socket has nothing to read; otherwise the timer is set for
    /// the next time it could be.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let (Some(idle), Some(timeout)) = (self.idle.as_mut(), self.shared.limits.idle_timeout)
        else {
            return false;
        };
        while idle.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let count = &self.calls.0;
            let next = if count.open.load(Ordering::Acquire) > 0 {
                now + timeout
            } else {
                let since = count.idle_since_ms.load(Ordering::Acquire);
                let idle_until = count.born + std::time::Duration::from_millis(since) + timeout;
                let next = idle_until.max(self.last_read + QUIET);
                if next <= now {
                    tracing::debug!(peer = %self.peer, ?timeout, "idle gRPC connection closed");
                    self.shared.metrics.reaped.inc();
                    self.ended = true;
                    return true;
                }
                next
            };
            idle.as_mut().reset(next);
        }
        false
    }
}

fn ended() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed by the server",
    )
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.forced(cx) {
            // End of file: nothing read.
            return Poll::Ready(Ok(()));
        }
        let filled = buf.filled().len();
        match Pin::new(&mut self.tcp).poll_read(cx, buf) {
            Poll::Pending if self.idle_expired(cx) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
            Poll::Ready(read) => {
                if buf.filled().len() > filled {
                    self.last_read = Instant::now();
                }
                Poll::Ready(read)
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.forced(cx) {
            return Poll::Ready(Err(ended()));
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.forced(cx) {
            return Poll::Ready(Err(ended()));
        }
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.forced(cx) {
            return Poll::Ready(Err(ended()));
        }
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.calls.clone()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.closed();
    }
}
