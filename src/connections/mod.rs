//! The gRPC port's connections, below HTTP/2: how many may be open, what
//! happens when the process runs out of file descriptors, when an idle one
//! is closed, and how every one is closed at the end of the shutdown grace.
//!
//! tonic serves whatever stream of connections it is given; this module is
//! that stream ([`Incoming`]), its connections ([`Conn`]) and the layer
//! that tells a connection whether a call is open on it ([`OpenCalls`]).

mod calls;
mod conn;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

pub use calls::{OpenCalls, OpenCallsLayer};
pub use conn::{Conn, ConnInfo};

/// How long the accept loop pauses after an error such as EMFILE: the
/// pending connection stays in the kernel's queue until a descriptor is
/// free, and retrying at once would only spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Descriptors kept for everything but gRPC connections: the admin port,
/// policy and snapshot files, the runtime's own.
const FD_RESERVE: u64 = 64;

/// What the settings ask of the connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; beyond it a new one is closed at once.
    pub max: usize,
    /// A connection with no call open for this long is closed.
    pub idle_timeout: Option<Duration>,
}

/// Connection counts, exported on `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    pub open: Gauge,
    pub refused: Counter,
    pub reaped: Counter,
    pub accept_errors: Counter,
}

impl ConnectionMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "grpc_connections",
            "gRPC connections open now",
            self.open.clone(),
        );
        registry.register(
            "grpc_connections_refused",
            "gRPC connections closed at once because grpc.max_connections were open",
            self.refused.clone(),
        );
        registry.register(
            "grpc_connections_reaped",
            "gRPC connections closed after grpc.idle_timeout with no call open",
            self.reaped.clone(),
        );
        registry.register(
            "grpc_accept_errors",
            "Failed accepts on the gRPC port other than a client giving up (e.g. out of file descriptors)",
            self.accept_errors.clone(),
        );
    }
}

/// The gRPC port's connections: a handle shared by the accept loop, every
/// connection and the daemon (which closes them all at the end of the
/// shutdown grace).
#[derive(Debug, Clone)]
pub struct Connections {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    limits: ConnectionLimits,
    open: AtomicUsize,
    /// Set while new connections are being refused (logged once a spell).
    refusing: AtomicBool,
    close: CancellationToken,
    /// Set by the first [`Connections::close_all`] of a shutdown.
    closing: AtomicBool,
    /// Set by the first worker that found its connections still open
    /// after the close (logged once, not once per worker).
    gave_up: AtomicBool,
    metrics: ConnectionMetrics,
}

impl Connections {
    pub fn new(limits: ConnectionLimits, metrics: ConnectionMetrics) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits,
                open: AtomicUsize::new(0),
                refusing: AtomicBool::new(false),
                close: CancellationToken::new(),
                closing: AtomicBool::new(false),
                gave_up: AtomicBool::new(false),
                metrics,
            }),
        }
    }

    /// The connections accepted on `listener`, for tonic's
    /// `serve_with_incoming`.
    pub fn incoming(&self, listener: TcpListener) -> Incoming {
        Incoming {
            listener,
            connections: self.clone(),
            backoff: None,
            failing: None,
        }
    }

    /// The tower layer that counts the calls open on each connection (its
    /// idle timer runs only while none is).
    pub fn layer(&self) -> OpenCallsLayer {
        OpenCallsLayer
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::Acquire)
    }

    /// Closes every connection, open calls and unsent data included (the
    /// end of the shutdown grace). Every worker calls it; only the first
    /// call gets the number of connections it closed (those of all
    /// workers), so the close is reported once per shutdown.
    pub fn close_all(&self) -> Option<usize> {
        let first = !self.shared.closing.swap(true, Ordering::AcqRel);
        let open = self.open();
        self.shared.close.cancel();
        first.then_some(open)
    }

    /// Whether the caller is the first worker to give up waiting for its
    /// connections to close after [`Self::close_all`]: the workers of
    /// `per_core` share one `Connections`, and the shutdown says it once.
    pub fn first_to_give_up(&self) -> bool {
        !self.shared.gave_up.swap(true, Ordering::AcqRel)
    }

    /// A connection under the bound, or `None`: `tcp` is dropped, which
    /// closes it.
    fn admit(&self, tcp: TcpStream, peer: SocketAddr) -> Option<Conn> {
        let s = &self.shared;
        let max = s.limits.max;
        if s.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            s.metrics.refused.inc();
            if !s.refusing.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max,
                    "gRPC connection limit reached (grpc.max_connections): closing new connections at once"
                );
            }
            return None;
        }
        if s.refusing.swap(false, Ordering::Relaxed) {
            tracing::info!(max, "gRPC connections below the limit again");
        }
        s.metrics.open.inc();
        // gRPC messages are small and latency matters more than packets.
        let _ = tcp.set_nodelay(true);
        Some(Conn::new(tcp, peer, self.shared.clone()))
    }
}

impl Shared {
    /// A connection closed (its `Conn` dropped).
    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.metrics.open.dec();
    }
}

/// The stream of accepted connections. It never yields an error: a client
/// that gave up is skipped, and any other failure (out of descriptors,
/// out of memory) pauses accepting for [`ACCEPT_BACKOFF`] instead of
/// retrying in a tight loop.
pub struct Incoming {
    listener: TcpListener,
    connections: Connections,
    backoff: Option<Pin<Box<Sleep>>>,
    /// Since when, and how many, accepts have failed in a row.
    failing: Option<(Instant, u64)>,
}

impl tokio_stream::Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(sleep) = self.backoff.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                self.backoff = None;
            }
            match ready!(self.listener.poll_accept(cx)) {
                Ok((tcp, peer)) => {
                    if let Some((since, failures)) = self.failing.take() {
                        tracing::info!(
                            failures,
                            after = ?since.elapsed(),
                            "gRPC port accepting again"
                        );
                    }
                    if let Some(conn) = self.connections.admit(tcp, peer) {
                        return Poll::Ready(Some(Ok(conn)));
                    }
                }
                Err(e) if gave_up(&e) => {}
                Err(e) => {
                    self.connections.shared.metrics.accept_errors.inc();
                    match &mut self.failing {
                        Some((_, failures)) => *failures += 1,
                        None => {
                            tracing::warn!(
                                error = %e,
                                retry = ?ACCEPT_BACKOFF,
                                "gRPC port cannot accept (out of file descriptors?); pausing"
                            );
                            self.failing = Some((Instant::now(), 1));
                        }
                    }
                    self.backoff = Some(Box::pin(tokio::time::sleep(ACCEPT_BACKOFF)));
                }
            }
        }
    }
}

/// An accept error that only means this one client went away.
fn gave_up(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// The process's file-descriptor limit (soft `RLIMIT_NOFILE`), if any.
pub fn fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// How many connections a file-descriptor limit leaves room for: the limit
/// less a reserve of [`FD_RESERVE`], or of half the limit when it is small.
pub fn fd_room(limit: u64) -> usize {
    let reserve = FD_RESERVE.min(limit / 2);
    usize::try_from(limit - reserve)
        .unwrap_or(usize::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fd_room_keeps_a_reserve_for_everything_else() {
        assert_eq!(fd_room(1_048_576), 1_048_512);
        assert_eq!(fd_room(1024), 960);
        assert_eq!(fd_room(256), 192);
        assert_eq!(fd_room(128), 64);
        assert_eq!(fd_room(64), 32);
        assert_eq!(fd_room(1), 1);
        assert_eq!(fd_room(0), 1);
    }

    #[test]
    fn the_close_and_the_giving_up_are_each_reported_by_one_worker() {
        let limits = ConnectionLimits {
            max: 4,
            idle_timeout: None,
        };
        let a = Connections::new(limits, ConnectionMetrics::default());
        let b = a.clone();
        assert_eq!(a.close_all(), Some(0));
        assert_eq!(b.close_all(), None);
        assert!(b.first_to_give_up());
        assert!(!a.first_to_give_up());
        assert!(!b.first_to_give_up());
    }

    #[tokio::test]
    async fn connections_beyond_the_bound_are_closed_at_once() {
        use tokio::io::AsyncReadExt;
        use tokio_stream::StreamExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = ConnectionMetrics::default();
        let connections = Connections::new(
            ConnectionLimits {
                max: 1,
                idle_timeout: None,
            },
            metrics.clone(),
        );
        let mut incoming = connections.incoming(listener);
        let (tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(conn) = incoming.next().await {
                let _ = tx.send(conn.unwrap());
            }
        });
        let _first = TcpStream::connect(addr).await.unwrap();
        let held = accepted.recv().await.unwrap();
        let mut buf = [0u8; 1];
        for _ in 0..2 {
            let mut refused = TcpStream::connect(addr).await.unwrap();
            assert_eq!(refused.read(&mut buf).await.unwrap(), 0, "closed at once");
        }
        assert!(accepted.try_recv().is_err());
        assert_eq!(metrics.refused.get(), 2);
        assert_eq!((connections.open(), metrics.open.get()), (1, 1));
        drop(held);
        assert_eq!((connections.open(), metrics.open.get()), (0, 0));
    }
}
