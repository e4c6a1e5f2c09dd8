//! A tiny HTTP/1.1 server for transport and misbehaving-API tests: one request per
//! connection, every request line and header set recorded, and the answer chosen per
//! request target (a response, a hang-up, or silence).

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the server does with a request.
pub enum Reply {
    /// Writes these bytes, then closes.
    Bytes(String),
    /// Closes the connection without answering (a reset, as the client sees it).
    Hangup,
    /// Never answers, keeps the connection open.
    Stall,
}

pub type Seen = Arc<Mutex<Vec<String>>>;

pub struct TinyServer {
    pub port: u16,
    /// Request lines, in arrival order.
    pub lines: Seen,
    /// Each request's lower-cased header lines joined by `|`.
    pub headers: Seen,
}

impl TinyServer {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn headers(&self) -> Vec<String> {
        self.headers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Starts a server on a free port; `answer` gets the request target and the port.
pub async fn serve(answer: fn(&str, u16) -> Reply) -> anyhow::Result<TinyServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let lines: Seen = Arc::new(Mutex::new(Vec::new()));
    let headers: Seen = Arc::new(Mutex::new(Vec::new()));
    let (line_log, header_log) = (lines.clone(), headers.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (line_log, header_log) = (line_log.clone(), header_log.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                    return;
                }
                let request_line = request_line.trim_end().to_string();
                let mut all = Vec::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end().to_ascii_lowercase();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("content-length:") {
                        length = n.trim().parse().unwrap_or(0);
                    }
                    all.push(line);
                }
                // Read the body so closing the socket does not reset the connection.
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body).await;
                header_log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(all.join("|"));
                let target = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                line_log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(request_line);
                match answer(&target, port) {
                    Reply::Bytes(bytes) => {
                        let _ = write.write_all(bytes.as_bytes()).await;
                        let _ = write.shutdown().await;
                    }
                    Reply::Hangup => {}
                    Reply::Stall => {
                        std::future::pending::<()>().await;
                    }
                }
            });
        }
    });
    Ok(TinyServer {
        port,
        lines,
        headers,
    })
}
