//! The hop floor: a byte-for-byte TCP relay with no HTTP in it, placed exactly like the
//! gateway. Gateway − hop is what the gateway's own work costs; hop − direct is what any
//! extra process on another core costs on this machine (wake-ups, loopback, scheduling).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// Relays every connection accepted on `listener` to `upstream` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    upstream: SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let mut client = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        eprintln!("perf-hop: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
            () = &mut shutdown => return Ok(()),
        }
    }
}
