//! `volley dead [--json] [--limit N] [--requeue [--job JOB]]`: the dead-letter queue.

use super::Connection;
use crate::exit::{self, Failure};
use crate::render::escape;
use volley_amqp::redact_amqp_url;

/// Show dead-lettered messages, or send them back to the chunk queue.
#[derive(Debug, clap::Args)]
pub struct DeadArgs {
    /// Move the dead letters back to the chunk queue (each published with a confirm before
    /// it leaves the dead-letter queue).
    #[arg(long)]
    pub requeue: bool,
    /// With --requeue: only this job's chunks.
    #[arg(long, requires = "requeue")]
    pub job: Option<String>,
    /// List at most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// Runs `dead`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn run(args: DeadArgs) -> Result<(), Failure> {
    let settings = args.connection.settings()?;
    let ns = settings.namespace.clone();
    let broker = args.connection.broker(&settings, "volley dead")?;
    let unavailable = |e: volley_core::BrokerError| {
        Failure::new(
            exit::UNAVAILABLE,
            format!(
                "cannot use RabbitMQ at {}: {e}",
                redact_amqp_url(settings.amqp_url())
            ),
        )
    };
    if args.requeue {
        let moved = broker
            .requeue_dead(args.job.as_deref())
            .await
            .map_err(unavailable)?;
        if args.json {
            println!("{{\"requeued\":{moved}}}");
        } else {
            println!("moved {moved} dead letters back to {ns}.chunks");
        }
        return Ok(());
    }
    let dead = broker.dead_letters(args.limit).await.map_err(unavailable)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&dead).map_err(anyhow::Error::from)?
        );
        return Ok(());
    }
    if dead.is_empty() {
        println!("no dead letters in {ns}.dead");
        return Ok(());
    }
    for d in &dead {
        let what = match (&d.job, d.chunk) {
            (Some(job), Some(chunk)) => format!(
                "job {} chunk {chunk} ({} records)",
                escape(job),
                d.records.unwrap_or(0)
            ),
            _ => format!("not a chunk: {}", d.preview),
        };
        println!("{:<16} {what}   {} bytes", d.reason, d.bytes);
    }
    println!(
        "{} shown; volley dead --requeue [--job JOB] sends them back",
        dead.len()
    );
    Ok(())
}
