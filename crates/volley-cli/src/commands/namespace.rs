//! `volley namespace delete NS [--json]`: removes a namespace's queues, exchange and every
//! Redis key under it, refused while a job in it runs.

use super::{Connection, broker_unavailable, unavailable};
use crate::exit::{self, Failure};
use crate::render::{escape, print_json};
use volley_amqp::AmqpBroker;
use volley_core::{Namespace, Store};
use volley_redis::RedisStore;

/// Manage namespaces.
#[derive(Debug, clap::Args)]
pub struct NamespaceArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: NamespaceAction,
}

/// A namespace action.
#[derive(Debug, clap::Subcommand)]
pub enum NamespaceAction {
    /// Delete the namespace's queues, exchange and Redis keys (refused while a job runs).
    Delete(DeleteArgs),
}

/// `namespace delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The namespace to delete (the settings' namespace is not assumed: it must be named).
    #[arg(value_name = "NS")]
    pub name: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// What `namespace delete --json` prints.
#[derive(Debug, serde::Serialize)]
struct Deleted {
    namespace: String,
    keys: u64,
    broker: Vec<String>,
}

/// Runs `namespace`.
///
/// # Errors
/// A [`Failure`] with the exit code: 75 while a job of the namespace runs.
pub async fn run(args: NamespaceArgs) -> Result<(), Failure> {
    let NamespaceAction::Delete(args) = args.action;
    let ns = Namespace::parse(&args.name).map_err(|e| Failure::new(exit::USAGE, e))?;
    let mut connection = args.connection.clone();
    connection.namespace = Some(ns.to_string());
    let (settings, store) = connection.store()?;
    let jobs = store
        .list_jobs()
        .await
        .map_err(|e| unavailable(&settings, e))?;
    let running: Vec<String> = jobs
        .iter()
        .filter(|j| !j.has_ended())
        .map(|j| format!("{} ({})", escape(&j.job), j.state))
        .collect();
    if !running.is_empty() {
        return Err(Failure::new(
            exit::TRY_LATER,
            format!(
                "namespace {ns} has jobs that have not ended: {}; wait for them (volley status JOB --wait) first",
                running.join(", ")
            ),
        ));
    }
    let broker = connection.broker(&settings, "volley namespace delete");
    let deleted = delete_namespace(&broker, &store)
        .await
        .map_err(|e| match e {
            Gone::Broker(e) => broker_unavailable(&settings, e),
            Gone::Store(e) => unavailable(&settings, e),
        })?;
    if args.json {
        print_json(&Deleted {
            namespace: ns.to_string(),
            keys: deleted.keys,
            broker: deleted.broker,
        })
    } else {
        let broker = if deleted.broker.is_empty() {
            "nothing on RabbitMQ".to_string()
        } else {
            deleted.broker.join(", ")
        };
        volley_core::outln!(
            "deleted namespace {ns}: {broker}; {} Redis keys",
            deleted.keys
        );
        Ok(())
    }
}

/// What [`delete_namespace`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceDeleted {
    /// Redis keys deleted.
    pub keys: u64,
    /// The queues and exchange that existed and were deleted (`queue ns.chunks.J`, …).
    pub broker: Vec<String>,
}

/// Why [`delete_namespace`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum Gone {
    /// RabbitMQ.
    #[error(transparent)]
    Broker(#[from] volley_core::BrokerError),
    /// Redis.
    #[error(transparent)]
    Store(#[from] volley_core::StoreError),
}

/// Deletes the namespace's queues and exchange, then every key under it, without asking
/// whether jobs run (the command asks first; test clean-up does not). Both parts are
/// attempted even when the first fails; its error is returned.
///
/// # Errors
/// [`Gone`].
pub async fn delete_namespace(
    broker: &AmqpBroker,
    store: &RedisStore,
) -> Result<NamespaceDeleted, Gone> {
    // Each job has a queue of its own: the jobs are read before their keys go.
    // Unreadable, the job queues stay; the rest is still deleted, and the error returned.
    let jobs = store.job_ids().await;
    let known = jobs.as_deref().unwrap_or_default();
    let existed = broker.existing_topology(known).await;
    let topology = broker.delete_topology(known).await;
    let keys = store.delete_namespace().await;
    jobs?;
    let broker = existed?;
    topology?;
    Ok(NamespaceDeleted {
        keys: keys?,
        broker,
    })
}
