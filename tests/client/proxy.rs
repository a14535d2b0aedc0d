//! A TCP proxy in front of the daemon that loses answers: on the first
//! `cut` connections it forwards the request but closes both sides as soon
//! as the daemon starts answering one (an HTTP/2 HEADERS frame on a
//! stream), so the daemon has decided and the client never hears it. Later
//! connections pass through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// Answers lost so far.
    pub cut: Arc<AtomicUsize>,
}

impl Proxy {
    /// Proxies to `daemon`, losing the answer on the first `cut`
    /// connections.
    pub async fn start(daemon: SocketAddr, cut: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            connections: Arc::new(AtomicUsize::new(0)),
            cut: Arc::new(AtomicUsize::new(0)),
        };
        let (connections, lost) = (proxy.connections.clone(), proxy.cut.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let n = connections.fetch_add(1, Ordering::SeqCst);
                let lost = lost.clone();
                tokio::spawn(async move {
                    let Ok(daemon) = TcpStream::connect(daemon).await else {
                        return;
                    };
                    pump(client, daemon, n < cut, lost).await;
                });
            }
        });
        proxy
    }
}

async fn pump(client: TcpStream, daemon: TcpStream, cut: bool, lost: Arc<AtomicUsize>) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_daemon, mut to_daemon) = daemon.into_split();
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_daemon).await;
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match from_daemon.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !cut {
            if to_client.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            continue;
        }
        // Frame by frame: 3 bytes length, 1 type, 1 flags, 4 stream id.
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            if buf[3] == 0x1 && stream != 0 {
                // The daemon's answer: drop it and the connection.
                lost.fetch_add(1, Ordering::SeqCst);
                upstream.abort();
                return;
            }
            let frame: Vec<u8> = buf.drain(..9 + len).collect();
            if to_client.write_all(&frame).await.is_err() {
                return;
            }
        }
    }
    upstream.abort();
}

/// A listener that accepts connections and never answers: a daemon that
/// hangs.
pub async fn black_hole() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}
