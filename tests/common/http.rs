//! A fake Ceramic node: a real HTTP/1.1 server on 127.0.0.1 whose answers a test scripts, down
//! to failures a real node shows (HTTP 500 with `{"error": …}`, a body cut short, a hang).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the fake node does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Status and body, completely.
    Full(u16, String),
    /// Declares the body's full length, sends only its first half, then closes.
    Truncated(u16, String),
    /// Waits, then replies.
    After(Duration, Box<Reply>),
    /// Status and a binary body (IPFS `block/get`).
    Bytes(u16, Vec<u8>),
}

/// One request as the fake node saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub body: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

type Route = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

pub struct FakeNode {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeNode {
    /// Serves `route(request, how many requests came before it)`.
    pub async fn start(route: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let route: Arc<Route> = Arc::new(route);
        let counter = Arc::new(AtomicUsize::new(0));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (route, log, counter) = (route.clone(), log.clone(), counter.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    log.lock().expect("log").push(request.clone());
                    let mut reply = route(&request, n);
                    while let Reply::After(wait, inner) = reply {
                        tokio::time::sleep(wait).await;
                        reply = *inner;
                    }
                    let (status, body, cut) = match reply {
                        Reply::Full(s, b) => (s, b.into_bytes(), false),
                        Reply::Truncated(s, b) => (s, b.into_bytes(), true),
                        Reply::Bytes(s, b) => (s, b, false),
                        Reply::After(..) => unreachable!("unwrapped above"),
                    };
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let sent = if cut {
                        &body[..body.len() / 2]
                    } else {
                        &body[..]
                    };
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(sent).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { url, seen, task }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once(':')).collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let authorization = header("authorization");
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    Some(Seen {
        method,
        target,
        body,
        authorization,
    })
}
