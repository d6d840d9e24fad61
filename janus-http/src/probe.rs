//! Hostile-client probes for tests (feature `test-support`): the slowloris and
//! connection-cap checks every Janus server must pass, written once so that the gateway, the
//! SDK and the sandbox service are held to the same test. Loopback addresses only: the
//! caller passes the address of a server it started itself.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for any single answer in these probes.
const ANSWER_LIMIT: Duration = Duration::from_secs(5);

/// What a probe found wrong, in words for the test's failure message.
pub type ProbeResult = Result<(), String>;

fn check_loopback(addr: SocketAddr) -> ProbeResult {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!("probes talk to loopback only, not {addr}"))
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))
}

/// One `GET path` on a fresh connection; the whole response as text.
pub async fn get(addr: SocketAddr, path: &str) -> Result<String, String> {
    check_loopback(addr)?;
    let mut stream = connect(addr).await?;
    let head = format!("GET {path} HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    match tokio::time::timeout(ANSWER_LIMIT, stream.read_to_end(&mut out)).await {
        Ok(Ok(_)) => Ok(String::from_utf8_lossy(&out).into_owned()),
        Ok(Err(e)) => Err(format!("GET {path}: {e}")),
        Err(_) => Err(format!("GET {path}: no answer within {ANSWER_LIMIT:?}")),
    }
}

/// Resolves when the peer has closed the connection (or it broke).
async fn closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Opens `connections` connections that trickle header bytes, checks that `GET ok_path`
/// answers 200 meanwhile, and that every trickling connection is closed within
/// `header_timeout` + 1 s.
pub async fn slowloris(
    addr: SocketAddr,
    connections: usize,
    header_timeout: Duration,
    ok_path: &str,
) -> ProbeResult {
    check_loopback(addr)?;
    let mut slow = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut stream = connect(addr).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nx-slow: ")
            .await
            .map_err(|e| format!("write: {e}"))?;
        slow.push(stream);
    }
    let started = Instant::now();
    let answer = get(addr, ok_path).await?;
    if !answer.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "GET {ok_path} beside {connections} slow connections: {answer}"
        ));
    }
    for stream in &mut slow {
        // Trickling a byte must not reset the header timer.
        let _ = stream.write_all(b"a").await;
    }
    let limit = header_timeout + Duration::from_secs(1);
    for (index, stream) in slow.iter_mut().enumerate() {
        let left = limit.saturating_sub(started.elapsed()) + Duration::from_millis(250);
        if tokio::time::timeout(left, closed(stream)).await.is_err() {
            return Err(format!(
                "slow connection {index} still open {:?} after the header timeout",
                started.elapsed().saturating_sub(header_timeout)
            ));
        }
    }
    Ok(())
}

/// Against a server whose connection cap is `cap`: `cap` silent connections, then a
/// `GET ok_path` must still get 200 (a silent connection is evicted, the oldest first);
/// then `cap` connections each stuck in a `POST busy_path` whose body never arrives keep
/// every slot active, and the next request gets 503 `server_overloaded` with `Retry-After`.
pub async fn connection_cap(
    addr: SocketAddr,
    cap: usize,
    ok_path: &str,
    busy_path: &str,
) -> ProbeResult {
    check_loopback(addr)?;
    let mut silent = Vec::with_capacity(cap);
    for _ in 0..cap {
        silent.push(connect(addr).await?);
    }
    // Let the server register them before the next one arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = get(addr, ok_path).await?;
    if !answer.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "GET {ok_path} with {cap} silent connections: {answer}"
        ));
    }
    if tokio::time::timeout(Duration::from_secs(2), closed(&mut silent[0]))
        .await
        .is_err()
    {
        return Err("the oldest silent connection was not evicted".to_owned());
    }
    drop(silent);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut busy = Vec::with_capacity(cap);
    for _ in 0..cap {
        let mut stream = connect(addr).await?;
        let head = format!(
            "POST {busy_path} HTTP/1.1\r\nhost: probe\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
        );
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        busy.push(stream);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = get(addr, ok_path).await?;
    let lower = answer.to_ascii_lowercase();
    if !(answer.starts_with("HTTP/1.1 503")
        && answer.contains("server_overloaded")
        && lower.contains("retry-after:"))
    {
        return Err(format!(
            "with {cap} busy connections expected 503 server_overloaded + Retry-After: {answer}"
        ));
    }
    drop(busy);
    Ok(())
}
