//! The hidden helper modes of this binary (see [`helper_main`]), and crossing into a
//! sandbox's network namespace without `unsafe`: the service runs its own binary under
//! `nsenter --net`.
//!
//! - `__holder ROOT WORKSPACE HOSTNAME TMP_MB BASE`: PID 1 of a sandbox (`holder`), started by
//!   `unshare` in the sandbox's new namespaces; `__pause NAME`, its child that never exits.
//! - `__connect HOST PORT`: connects from inside the sandbox and relays stdin/stdout to
//!   the socket; the service speaks HTTP over the helper's pipes (the `proxy` route).
//! - `__forward PORT SOCKET`: listens on 127.0.0.1:PORT inside the sandbox and relays each
//!   connection to a Unix socket on the host (Unix sockets live in the file system, so they
//!   cross network namespaces); the service connects that socket to the platform endpoint
//!   (`--forward NAME=HOST:PORT`). It exits when its stdin, held by the service, ends.

use std::path::Path;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Runs a hidden helper mode when the process arguments (after the program name) ask for
/// one, and says how the process should exit; `None` for an ordinary invocation. Binaries
/// that the service may name as `helper_binary` call this first thing in `main`.
///
/// A finished helper exits the process at once rather than returning: `__connect` reads
/// stdin on the runtime's blocking pool, a read that cannot be cancelled, so dropping the
/// runtime would wait for the service to close the pipe, while the service waits for
/// the helper's exit to learn how the connection ended (the proxy route's answer when a
/// competitor dies mid-request).
pub async fn run_helper(args: &[String]) -> Option<std::process::ExitCode> {
    let outcome = helper_main(args).await?;
    let code = match outcome {
        Ok(()) => 0,
        Err(e) => {
            #[allow(clippy::print_stderr)] // the helper's only channel for a failure
            {
                eprintln!("janus sandbox helper: {e}");
            }
            1
        }
    };
    std::process::exit(code)
}

/// Hidden helper entry point; `args` are the process arguments after the program name.
/// Returns `None` when `args` is not a helper invocation.
pub async fn helper_main(args: &[String]) -> Option<std::io::Result<()>> {
    match args {
        [mode, host, port] if mode == "__connect" => Some(connect_stdio(host, port).await),
        [mode, port, socket] if mode == "__forward" => {
            Some(forward_listen(port, Path::new(socket)).await)
        }
        [mode, _name] if mode == "__pause" => Some(crate::holder::pause_main()),
        // Blocks this thread for the sandbox's life; nothing else runs in this process.
        [mode, root, workspace, hostname, tmp_mb, base] if mode == "__holder" => {
            Some(crate::holder::holder_main(
                Path::new(root),
                Path::new(workspace),
                hostname,
                tmp_mb,
                Path::new(base),
            ))
        }
        _ => None,
    }
}

async fn connect_stdio(host: &str, port: &str) -> std::io::Result<()> {
    let port: u16 = port
        .parse()
        .map_err(|_| std::io::Error::other("bad port"))?;
    let stream = TcpStream::connect((host, port)).await?;
    let _ = stream.set_nodelay(true);
    let (mut socket_read, mut socket_write) = stream.into_split();
    let upstream = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut socket_write).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut socket_write).await;
    });
    // The response side decides when the relay is done.
    let mut stdout = tokio::io::stdout();
    let _ = tokio::io::copy(&mut socket_read, &mut stdout).await;
    let _ = tokio::io::AsyncWriteExt::flush(&mut stdout).await;
    upstream.abort();
    Ok(())
}

async fn forward_listen(port: &str, socket: &Path) -> std::io::Result<()> {
    let port: u16 = port
        .parse()
        .map_err(|_| std::io::Error::other("bad port"))?;
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    // The service holds our stdin open for as long as it lives: end-of-file means it is
    // gone (perhaps killed), and so is this forward.
    tokio::spawn(async {
        let mut stdin = tokio::io::stdin();
        let mut sink = [0u8; 64];
        while matches!(
            tokio::io::AsyncReadExt::read(&mut stdin, &mut sink).await,
            Ok(n) if n > 0
        ) {}
        std::process::exit(0);
    });
    println_ready();
    loop {
        let (inside, _) = listener.accept().await?;
        let socket = socket.to_owned();
        tokio::spawn(async move {
            if let Ok(outside) = UnixStream::connect(&socket).await {
                splice(inside, outside).await;
            }
        });
    }
}

#[allow(clippy::print_stdout)] // the helper's readiness line, read by the service
fn println_ready() {
    println!("ready");
}

/// Relays both ways until either side closes.
pub async fn splice(
    a: impl AsyncRead + AsyncWrite + Unpin,
    b: impl AsyncRead + AsyncWrite + Unpin,
) {
    let (mut a, mut b) = (a, b);
    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
}

/// Host side of a forward: accepts on `socket` and connects each to `target`.
pub fn serve_forward(
    socket: &Path,
    target: String,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    Ok(tokio::spawn(async move {
        while let Ok((inside, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                match TcpStream::connect(&target).await {
                    Ok(outside) => {
                        let _ = outside.set_nodelay(true);
                        splice(inside, outside).await;
                    }
                    Err(e) => tracing::warn!(%target, error = %e, "forward target unreachable"),
                }
            });
        }
    }))
}

/// A connection to a port inside a sandbox (short-lived, one per proxied request).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Inside {
    /// No isolation: a plain socket.
    Socket(TcpStream),
    /// Full isolation: the relay helper's pipes (the helper dies with this value).
    Helper {
        /// The helper process.
        child: tokio::process::Child,
        /// Its stdout (reads) and stdin (writes).
        io: tokio::io::Join<tokio::process::ChildStdout, tokio::process::ChildStdin>,
    },
}
