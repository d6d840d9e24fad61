//! Crossing the sandbox's network boundary only where the service allows it: the proxy
//! route into the sandbox, and `--forward` endpoints out of it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{require_root, start};
use janus_sandbox::IsolationMode;

const SERVER: &str = r#"
import http.server, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for i in range(3):
            data = ("data: %d %s\n\n" % (i, self.path)).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(0.4)
        self.wfile.write(b"0\r\n\r\n")
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.upper())
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", 8080), H).serve_forever()
"#;

#[tokio::test]
async fn the_proxy_reaches_a_server_inside_the_sandbox_streaming() {
    if !require_root() {
        return;
    }
    let service = start(IsolationMode::Full, |c| {
        c.helper_binary = env!("CARGO_BIN_EXE_janus-sandbox").into()
    })
    .await;
    let id = service.create(json!({"expose_ports": [8080]})).await;
    service
        .post(
            &format!("/api/sandboxes/{id}/files/write"),
            json!({"path": "srv.py", "content": SERVER}),
        )
        .await;
    service
        .exec(&id, "nohup python3 /workspace/srv.py >/dev/null 2>&1 &")
        .await;
    let probe = "python3 -c 'import socket,time\nfor _ in range(50):\n  try:\n    socket.create_connection((\"127.0.0.1\", 8080), 0.2); break\n  except OSError: time.sleep(0.1)'";
    service.exec(&id, probe).await;

    // POST with a body goes in, the answer comes out.
    let echoed = service
        .client
        .post_json(
            &format!("{}/api/sandboxes/{id}/proxy/8080/echo", service.url),
            Bytes::from_static(b"hello proxy"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(echoed.status, 200);
    assert_eq!(&echoed.body[..], b"HELLO PROXY");

    // A streamed answer arrives event by event, not all at the end.
    let addr = service.url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(format!("/api/sandboxes/{id}/proxy/8080/events?n=3"))
        .header("host", &addr)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let started = Instant::now();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            arrivals.push(started.elapsed());
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert_eq!(
        text,
        "data: 0 /events?n=3\n\ndata: 1 /events?n=3\n\ndata: 2 /events?n=3\n\n"
    );
    assert!(arrivals.len() >= 3, "{arrivals:?}");
    assert!(
        arrivals[0] < Duration::from_millis(400),
        "first event was held back: {arrivals:?}"
    );

    let nothing = service.get(&format!("/api/sandboxes/{id}/proxy/9/")).await;
    assert_eq!(nothing.status, 502);
    service.stop().await;
}

#[tokio::test]
async fn forward_endpoints_are_reachable_inside_and_nothing_else() {
    if !require_root() {
        return;
    }
    // A platform endpoint on the host.
    let platform = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = platform.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = platform.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4];
                if socket.read_exact(&mut buf).await.is_ok() && &buf == b"ping" {
                    let _ = socket.write_all(b"pong").await;
                }
            });
        }
    });
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_port = other.local_addr().unwrap().port();
    let service = start(IsolationMode::Full, |c| {
        c.helper_binary = env!("CARGO_BIN_EXE_janus-sandbox").into();
        c.forwards = vec![("platform".into(), format!("127.0.0.1:{port}"))];
    })
    .await;
    let id = service.create(json!({})).await;
    let out = service.exec(&id, "echo $SANDY_FORWARD_PLATFORM").await;
    assert_eq!(out["stdout"], format!("127.0.0.1:{port}\n"));
    let talk = "python3 -c 'import os,socket\nh,p=os.environ[\"SANDY_FORWARD_PLATFORM\"].split(\":\")\ns=socket.create_connection((h,int(p)),2)\ns.sendall(b\"ping\")\nprint(s.recv(4).decode())'";
    let out = service.exec(&id, talk).await;
    assert_eq!(out["stdout"], "pong\n", "{out}");
    let blocked = format!("python3 -c 'import socket\ntry:\n  socket.create_connection((\"127.0.0.1\",{other_port}),2); print(\"open\")\nexcept OSError: print(\"blocked\")'");
    assert_eq!(service.exec(&id, &blocked).await["stdout"], "blocked\n");
    drop(other);
    service.stop().await;
}

/// Regression (issue 11): with forwards configured, `create` failed with "path must be
/// shorter than SUN_LEN" whenever `--root` was long (a temporary directory was enough).
#[tokio::test]
async fn forwards_work_under_a_150_character_root() {
    if !require_root() {
        return;
    }
    let platform = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = platform.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = platform.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4];
                if socket.read_exact(&mut buf).await.is_ok() && &buf == b"ping" {
                    let _ = socket.write_all(b"pong").await;
                }
            });
        }
    });
    let mut root = std::env::temp_dir()
        .join(format!("janus-long-root-{}-", janus_core::random_hex(4)))
        .into_os_string()
        .into_string()
        .unwrap();
    while root.len() < 150 {
        root.push('x');
    }
    let root = std::path::PathBuf::from(root);
    assert_eq!(root.as_os_str().len(), 150);
    let sockets = janus_sandbox::socket_base(&root);
    let service = start(IsolationMode::Full, |c| {
        c.root = root.clone();
        c.forwards = vec![("platform".into(), format!("127.0.0.1:{port}"))];
    })
    .await;
    let id = service.create(json!({})).await;
    let talk = "python3 -c 'import os,socket\nh,p=os.environ[\"SANDY_FORWARD_PLATFORM\"].split(\":\")\ns=socket.create_connection((h,int(p)),2)\ns.sendall(b\"ping\")\nprint(s.recv(4).decode())'";
    let out = service.exec(&id, talk).await;
    assert_eq!(out["stdout"], "pong\n", "{out}");
    assert!(sockets.join(&id).exists(), "sockets not in {sockets:?}");
    let terminated = service
        .post(&format!("/api/sandboxes/{id}/terminate"), json!({}))
        .await;
    assert!(terminated.status.is_success());
    assert!(!sockets.join(&id).exists(), "sockets left in {sockets:?}");
    service.stop().await;
    assert!(!sockets.exists(), "{sockets:?} left behind");
    let _ = std::fs::remove_dir_all(&root);
}
