//! A chaos TCP proxy: put it between a worker and a server, then sever every live
//! connection, or blackhole traffic (connections stay open, nothing flows, no FIN, as in a
//! network partition), and heal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

pub struct ChaosProxy {
    pub port: u16,
    blackholed: Arc<AtomicBool>,
    healed: Arc<Notify>,
    generation: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl ChaosProxy {
    /// Listens on a free port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let blackholed = Arc::new(AtomicBool::new(false));
        let healed = Arc::new(Notify::new());
        let (generation, _) = watch::channel(0u64);
        let (b, h, g) = (blackholed.clone(), healed.clone(), generation.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (b, h) = (b.clone(), h.clone());
                let mut severed = g.subscribe();
                tokio::spawn(async move {
                    wait_healed(&b, &h).await;
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        () = pump(cr, sw, b.clone(), h.clone()) => {}
                        () = pump(sr, cw, b, h) => {}
                        _ = severed.changed() => {}
                    }
                });
            }
        });
        Ok(Self {
            port,
            blackholed,
            healed,
            generation,
            task,
        })
    }

    /// `host:port` to give clients instead of the server's.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Closes every live connection.
    pub fn sever(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Stops forwarding: bytes are neither delivered nor refused, connections stay open.
    pub fn blackhole(&self) {
        self.blackholed.store(true, Ordering::SeqCst);
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.blackholed.store(false, Ordering::SeqCst);
        self.healed.notify_waiters();
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.sever();
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    blackholed: Arc<AtomicBool>,
    healed: Arc<Notify>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        // A blackhole holds what is in flight and waits: the peer sees silence.
        wait_healed(&blackholed, &healed).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn wait_healed(blackholed: &AtomicBool, healed: &Notify) {
    // The timeout covers a heal between the check and the wait.
    while blackholed.load(Ordering::SeqCst) {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(50), healed.notified()).await;
    }
}
