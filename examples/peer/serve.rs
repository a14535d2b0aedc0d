//! What the peer servers of `benches/compare.sh` share (`empty_acquire`,
//! `limitador_rls`): a tokio runtime of the flavor asked for, a listener
//! that prints where it is bound (`benches/lib.sh` reads the line), and
//! tonic serving the routes on it without Nagle, as prescient accepts.

use std::net::SocketAddr;

use tonic::service::Routes;

/// Serves `routes` on `listen` until killed; `flavor` is
/// `current_thread` or `multi_thread`.
pub fn serve(
    flavor: &str,
    listen: SocketAddr,
    routes: Routes,
) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = match flavor {
        "current_thread" => tokio::runtime::Builder::new_current_thread(),
        "multi_thread" => tokio::runtime::Builder::new_multi_thread(),
        other => return Err(format!("--flavor {other}: current_thread or multi_thread").into()),
    }
    .enable_all()
    .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("listening on {}", listener.local_addr()?);
        let incoming = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            |tcp| {
                if let Ok(tcp) = &tcp {
                    let _ = tcp.set_nodelay(true);
                }
                tcp
            },
        );
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(incoming)
            .await?;
        Ok(())
    })
}
