use crate::routes::router;
use crate::stats::{Counters, Stats};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Mock settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct MockConfig {
    /// Count requests per id (costs a lock per request).
    pub track_ids: bool,
    /// Keep each user-route request's arrival time in [`Stats::times_ms`] (costs a lock per
    /// request).
    pub track_times: bool,
}

/// A mock API serving in the background of the current runtime.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    counters: Arc<Counters>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl MockServer {
    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(addr: &str, config: MockConfig) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::new(config.track_ids, config.track_times));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(counters.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(MockServer {
            addr,
            counters,
            stop: Some(stop),
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What was received so far.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Zeroes the counters (the `fail_first` counts and arrival times too).
    pub fn reset(&self) {
        self.counters.reset();
    }

    /// Switches the outage on (`Some(status)`: every user route answers that status, without
    /// `Retry-After`) or off (`None`), like `POST`/`DELETE /admin/outage`.
    pub fn set_outage(&self, status: Option<u16>) {
        self.counters
            .set_outage(status.filter(|s| (100..=599).contains(s)));
    }

    /// Stops serving.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves on `listener` until `shutdown` resolves.
///
/// # Errors
/// When serving fails.
pub async fn serve(
    listener: TcpListener,
    config: MockConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(Arc::new(Counters::new(
            config.track_ids,
            config.track_times,
        ))),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
