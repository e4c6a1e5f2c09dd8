//! One module per subcommand.

pub mod control;
pub mod dead;
pub mod demo;
pub mod forget;
pub mod hosts;
pub mod jobs;
pub(crate) mod lookup;
pub mod migrate;
pub mod namespace;
pub mod results;
pub mod retry;
pub mod run;
pub mod status;
pub mod verify;

use crate::exit::{CONFIG, Failure, UNAVAILABLE, USAGE};
use std::path::Path;
use volley_amqp::{AmqpBroker, AmqpOptions};
use volley_core::{JobId, redact_url};
use volley_redis::RedisStore;
use volley_runtime::Settings;

/// Connection flags every fleet command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Settings file (TOML): amqp_url, redis_url, namespace, delivery_limit, retention.
    #[arg(long, env = "VOLLEY_CONFIG", global = true)]
    pub config: Option<std::path::PathBuf>,
    /// Namespace of queues and keys (overrides VOLLEY_NAMESPACE).
    #[arg(long, global = true)]
    pub namespace: Option<String>,
}

impl Connection {
    /// Loads the settings.
    ///
    /// # Errors
    /// A usage [`Failure`] naming the bad setting.
    pub fn settings(&self) -> Result<Settings, Failure> {
        Settings::load(
            self.config.as_deref().map(Path::new),
            &[("namespace", self.namespace.clone())],
        )
        .map_err(|e| Failure::new(USAGE, e))
    }

    /// The RabbitMQ broker for the settings (namespace, delivery limit), named `role` in the
    /// broker's connection list.
    pub fn broker(&self, settings: &Settings, role: &str) -> AmqpBroker {
        AmqpBroker::new(AmqpOptions::from_settings(settings, role))
    }

    /// A Redis store for the settings.
    ///
    /// # Errors
    /// A [`Failure`] when the settings are bad.
    pub fn store(&self) -> Result<(Settings, RedisStore), Failure> {
        let settings = self.settings()?;
        let store = RedisStore::from_settings(&settings).map_err(|e| {
            Failure::new(
                UNAVAILABLE,
                format!("{e} ({})", redact_url(settings.redis_url())),
            )
        })?;
        Ok((settings, store))
    }
}

/// Parses a job id argument.
///
/// # Errors
/// A usage [`Failure`].
pub fn job_id(text: &str) -> Result<JobId, Failure> {
    JobId::parse(text).map_err(|e| Failure::new(USAGE, e))
}

/// A store error as a failure.
pub fn unavailable(settings: &Settings, e: impl std::fmt::Display) -> Failure {
    Failure::new(
        UNAVAILABLE,
        format!(
            "cannot read Redis at {}: {e}",
            redact_url(settings.redis_url())
        ),
    )
}

/// A broker error as a failure: the queue declared with other arguments than these settings
/// is a settings matter (exit 78, the one line naming the setting), anything else 69.
pub fn broker_failure(settings: &Settings, e: volley_core::BrokerError, then: &str) -> Failure {
    match e {
        volley_core::BrokerError::Topology(line) => Failure::new(CONFIG, line),
        e => Failure::new(
            UNAVAILABLE,
            format!(
                "cannot use RabbitMQ at {}: {e}{then}",
                redact_url(settings.amqp_url())
            ),
        ),
    }
}

/// A broker error of a command that only reads the broker or deletes from it: it declares
/// nothing with arguments, so no setting can contradict the queue (exit 69).
pub fn broker_unavailable(settings: &Settings, e: volley_core::BrokerError) -> Failure {
    Failure::new(
        UNAVAILABLE,
        format!(
            "cannot use RabbitMQ at {}: {e}",
            redact_url(settings.amqp_url())
        ),
    )
}
