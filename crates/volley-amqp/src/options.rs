use lapin::{Connection, ConnectionProperties};
use std::time::Duration;
use volley_core::{Backoff, BrokerError, Namespace, redact_url};
use volley_runtime::Settings;

/// How to reach RabbitMQ and how the queues are set up.
#[derive(Debug, Clone)]
pub struct AmqpOptions {
    /// `amqp://user:password@host:port/vhost` (`amqps://` for TLS). A `heartbeat` query
    /// parameter sets the heartbeat (default 10 s here).
    pub url: String,
    /// Prefix of the exchange and queue names.
    pub namespace: Namespace,
    /// Deliveries of one message before it is dead-lettered (`x-delivery-limit`).
    pub delivery_limit: u32,
    /// Deadline for connecting.
    pub connect_timeout: Duration,
    /// Deadline for a batch of publishes to be confirmed.
    pub confirm_timeout: Duration,
    /// A name shown in the broker's connection list.
    pub connection_name: String,
}

impl AmqpOptions {
    /// Options with the defaults: delivery limit 20, 10 s to connect, 30 s to confirm.
    pub fn new(url: impl Into<String>, namespace: Namespace) -> Self {
        Self {
            url: url.into(),
            namespace,
            delivery_limit: 20,
            connect_timeout: Duration::from_secs(10),
            confirm_timeout: Duration::from_secs(30),
            connection_name: "volley".into(),
        }
    }

    /// Options for the broker the settings name (URL, namespace, delivery limit), shown as
    /// `connection_name` in the broker's connection list: the one way the binaries, the CLI
    /// and the test kit reach RabbitMQ.
    pub fn from_settings(settings: &Settings, connection_name: impl Into<String>) -> Self {
        Self {
            delivery_limit: settings.delivery_limit,
            connection_name: connection_name.into(),
            ..Self::new(settings.amqp_url(), settings.namespace.clone())
        }
    }
}

pub(crate) fn unavailable(e: lapin::Error) -> BrokerError {
    BrokerError::Unavailable(e.to_string())
}

/// The URL with a heartbeat added when the user gave none: lapin would otherwise take the
/// server's 60 s, too slow to notice a dead peer.
fn with_heartbeat(url: &str) -> String {
    if url.contains("heartbeat=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}heartbeat=10")
}

/// How long closing a connection or cancelling a consumer may wait: a dead peer never
/// answers.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Runs the steps that open a connection for use (connect, channel, declare, qos or confirm
/// mode) under one deadline of three connect timeouts: a node still starting can accept a
/// connection and then leave a channel or a declare unanswered.
pub(crate) async fn within_open_deadline<T>(
    options: &AmqpOptions,
    what: &str,
    steps: impl std::future::Future<Output = Result<T, BrokerError>>,
) -> Result<T, BrokerError> {
    let deadline = options.connect_timeout.saturating_mul(3);
    tokio::time::timeout(deadline, steps)
        .await
        .unwrap_or_else(|_| {
            Err(BrokerError::Unavailable(format!(
                "{what} not ready within {deadline:?}"
            )))
        })
}

/// How a failed connect begins its message (what comes after it is lapin's reason).
pub(crate) const CONNECT_FAILED: &str = "cannot connect to ";

/// Opens a connection with a deadline.
pub(crate) async fn connect(options: &AmqpOptions, role: &str) -> Result<Connection, BrokerError> {
    let props = ConnectionProperties::default()
        .with_connection_name(format!("{} {role}", options.connection_name).into());
    let url = with_heartbeat(&options.url);
    match tokio::time::timeout(options.connect_timeout, Connection::connect(&url, props)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(BrokerError::Unavailable(format!(
            "{CONNECT_FAILED}{}: {e}",
            redact_url(&options.url)
        ))),
        Err(_) => Err(BrokerError::Unavailable(format!(
            "{CONNECT_FAILED}{}: no answer within {:?}",
            redact_url(&options.url),
            options.connect_timeout
        ))),
    }
}

/// Reconnect loops wait 100 ms plus a uniform share of 200 ms doubling to 10 s: jittered,
/// so that workers cut off together do not all come back at the same moment.
pub(crate) const RECONNECT_BACKOFF: Backoff =
    Backoff::doubling(Duration::from_millis(200), Duration::from_secs(10))
        .with_jitter_above(Duration::from_millis(100));
