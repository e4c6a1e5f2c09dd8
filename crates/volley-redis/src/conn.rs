use deadpool_redis::{Manager, Pool, Runtime};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use std::sync::Mutex;
use std::time::Duration;
use volley_core::{StoreError, redact_url};
use volley_runtime::Settings;

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port[/db]` or `rediss://` for TLS.
    pub url: String,
    /// Deadline of every command; a commit that passes it has an unknown outcome and is
    /// retried (the commit is idempotent).
    pub command_timeout: Duration,
    /// Deadline for connecting.
    pub connect_timeout: Duration,
}

impl RedisOptions {
    /// Options with the default deadlines (5 s per command, 5 s to connect).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            command_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Options for the Redis the settings name, with the default deadlines.
    pub fn from_settings(settings: &Settings) -> Self {
        Self::new(settings.redis_url())
    }
}

/// One multiplexed connection shared by every task, created through a deadpool pool (for
/// its bounded create/wait deadlines) and replaced when it breaks. Checking a connection out
/// of the pool for each command would cost a PING round trip per checkout (deadpool-redis
/// recycles with UNWATCH + PING), doubling the per-chunk budget; a multiplexed connection
/// needs no pool to be shared.
pub(crate) struct Connections {
    pool: Pool,
    current: Mutex<Option<MultiplexedConnection>>,
    pub(crate) timeout: Duration,
}

impl Connections {
    pub(crate) fn new(options: &RedisOptions) -> Result<Self, StoreError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout));
        let manager = Manager::new_with_config(options.url.as_str(), config).map_err(|e| {
            StoreError::Unavailable(format!(
                "invalid Redis URL {}: {e}",
                redact_url(&options.url)
            ))
        })?;
        let pool = Pool::builder(manager)
            .max_size(2)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("Redis pool: {e}")))?;
        Ok(Self {
            pool,
            current: Mutex::new(None),
            timeout: options.command_timeout,
        })
    }

    pub(crate) async fn get(&self) -> Result<MultiplexedConnection, StoreError> {
        if let Some(conn) = self.lock().as_ref() {
            return Ok(conn.clone());
        }
        let pooled = self
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to Redis: {e}")))?;
        let conn = deadpool_redis::Connection::take(pooled);
        *self.lock() = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets a connection that failed, so the next call reconnects.
    pub(crate) fn discard(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        // The guarded value is a plain Option swap; a poisoned lock holds a usable value.
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}
