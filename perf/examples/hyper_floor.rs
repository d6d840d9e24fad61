//! The hyper floor: the least a relay built on hyper can do — an HTTP/1 server, the body
//! collected, the request sent on a pooled hyper client connection, the response streamed
//! back — with no validation, logging, tracing or timeouts. It answers how close to nginx
//! any gateway on hyper can get on this machine (perf/ANALYSIS.md). A measuring
//! instrument, not a product: it panics on what a real relay must handle.
//!
//! ```sh
//! cargo build --release -p janus-perf --example hyper_floor
//! target/release/examples/hyper_floor 127.0.0.1:18091 127.0.0.1:18080 [legacy]
//! ```
//! `legacy` sends through hyper-util's legacy `Client` instead of the hand pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

type Pool = Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>;

async fn checkout(pool: &Pool, upstream: &str) -> SendRequest<Full<Bytes>> {
    loop {
        let s = pool.lock().unwrap().pop();
        match s {
            Some(mut s) => {
                if s.ready().await.is_ok() {
                    return s;
                }
            }
            None => break,
        }
    }
    let io = TcpStream::connect(upstream).await.unwrap();
    io.set_nodelay(true).unwrap();
    let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    s
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen = args[1].clone();
    let upstream: &'static str = Box::leak(args[2].clone().into_boxed_str());
    let legacy = args.get(3).is_some_and(|a| a == "legacy");
    // The runtime the gateway runs on with one worker.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = TcpListener::bind(&listen).await.unwrap();
        let pool: Pool = Arc::new(Mutex::new(Vec::new()));
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let pool = pool.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let pool = pool.clone();
                    let client = client.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let uri: http::Uri = format!("http://{upstream}{}", parts.uri.path())
                            .parse()
                            .unwrap();
                        let out = hyper::Request::post(uri)
                            .header("content-type", "application/json")
                            .header("host", upstream)
                            .body(Full::new(body))
                            .unwrap();
                        if legacy {
                            let resp = client.request(out).await.unwrap();
                            Ok::<_, hyper::Error>(resp)
                        } else {
                            let mut s = checkout(&pool, upstream).await;
                            let resp = s.send_request(out).await?;
                            pool.lock().unwrap().push(s);
                            Ok::<_, hyper::Error>(resp)
                        }
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}
