//! Runs the `hello` binary as a competitor author would: start it, wait for it to listen,
//! ask it something in both modes, stop it with SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 exchange with `Connection: close`; returns the whole response.
fn exchange(addr: &str, request: &str) -> String {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    response
}

fn chat(addr: &str, stream: bool) -> String {
    let body = format!(
        r#"{{"model":"hello","messages":[{{"role":"user","content":"hi there"}}],"stream":{stream}}}"#
    );
    exchange(
        addr,
        &format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn hello_binary_serves_and_stops_on_sigterm() {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hello"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env_remove("JANUS_LISTEN")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Running(child);

    // The first log line says where it listens.
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("exited before listening").unwrap();
        let json: serde_json::Value = serde_json::from_str(&line).expect("log lines are JSON");
        if json["message"] == "competitor listening" {
            break json["listen"].as_str().unwrap().to_owned();
        }
    };
    let ready = started.elapsed();
    assert!(ready < Duration::from_secs(1), "took {ready:?} to listen");

    let health = exchange(
        &addr,
        &format!("GET /health HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"),
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    let plain = chat(&addr, false);
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    assert!(plain.contains("Hello! You said: hi there"), "{plain}");

    let streamed = chat(&addr, true);
    assert!(
        streamed.contains("content-type: text/event-stream"),
        "{streamed}"
    );
    assert!(streamed.contains("\"role\":\"assistant\""), "{streamed}");
    assert!(streamed.contains("data: [DONE]"), "{streamed}");

    // SIGTERM → graceful shutdown → exit code 0.
    let mut child = child;
    let pid = child.0.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    // Drain the rest of the log so the request lines are checked too.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("\"request_id\"") && l.contains("request finished")),
        "{rest:?}"
    );
}

#[test]
fn the_sdk_readme_shows_hello_verbatim() {
    let readme = include_str!("../../../janus-competitor-sdk/README.md");
    let hello = include_str!("../src/main.rs");
    assert!(
        readme.contains(hello),
        "update janus-competitor-sdk/README.md"
    );
    assert!(hello.lines().count() < 30);
}
