//! `volley cancel JOB`, `volley pause JOB`, `volley resume JOB` and
//! `volley limit JOB [--rate R] [--concurrency N] [--clear]`: a job's controls, stored with
//! its keys in one atomic step and announced to every worker.

use super::{Connection, job_id, unavailable};
use crate::exit::{self, Failure};
use crate::render::{escape, print_json};
use volley_core::governor::{FleetEvent, FleetState};
use volley_core::time::now_ms;
use volley_core::{ControlChange, ControlReply, JobControls, Store};

/// A job to cancel, pause or resume.
#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// The job id.
    pub job: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// A running job's new limits.
#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// The job id.
    pub job: String,
    /// The job's fleet-wide rate, in requests per second (replaces
    /// `concurrency.rate_limit`).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Requests of the job in flight per worker (replaces `concurrency.per_worker`).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Go back to the spec's rate and concurrency.
    #[arg(long, conflicts_with_all = ["rate", "concurrency"])]
    pub clear: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// What `--json` prints.
#[derive(Debug, serde::Serialize)]
struct ControlReport<'a> {
    job: &'a str,
    action: &'static str,
    controls: JobControls,
}

/// Runs `cancel`, `pause` or `resume`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn run(args: ControlArgs, change: ControlChange) -> Result<(), Failure> {
    apply(&args.connection, &args.job, change, args.json).await
}

/// Runs `limit`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn limit(args: LimitArgs) -> Result<(), Failure> {
    let change = limit_change(&args)?;
    apply(&args.connection, &args.job, change, args.json).await
}

fn limit_change(args: &LimitArgs) -> Result<ControlChange, Failure> {
    limit_values(args.rate, args.concurrency, args.clear)
}

async fn apply(
    connection: &Connection,
    job: &str,
    change: ControlChange,
    json: bool,
) -> Result<(), Failure> {
    let job = job_id(job)?;
    let (settings, store) = connection.store()?;
    let fleet = super::hosts::open_fleet(connection)?;
    let controls = control(&settings, &store, fleet.as_ref(), &job, change).await?;
    if json {
        return print_json(&ControlReport {
            job: job.as_str(),
            action: change.as_str(),
            controls,
        });
    }
    let job = escape(job.as_str());
    let said = match change {
        ControlChange::Cancel => format!(
            "job {job}: cancel stored; workers send none of its requests from within a second (requests already in flight finish), its other records end `cancelled`\n  follow it: volley status {job} --wait   send them later: volley retry {job}"
        ),
        ControlChange::Pause => {
            format!("job {job}: paused; its records wait without sending until volley resume {job}")
        }
        ControlChange::Resume => format!("job {job}: resumed"),
        ControlChange::Limit { .. } | ControlChange::ClearLimits => {
            format!("job {job}: {}", describe_limits(&controls))
        }
    };
    volley_core::outln!("{said}");
    Ok(())
}

/// Stores a control of `job` and announces it to every worker: what `volley cancel`,
/// `pause`, `resume` and `limit` and the dashboard's buttons do.
///
/// # Errors
/// A [`Failure`]: 2 for no such job or one that has ended, 69 when Redis cannot be written.
pub(crate) async fn control(
    settings: &volley_runtime::Settings,
    store: &volley_redis::RedisStore,
    fleet: &dyn FleetState,
    job: &volley_core::JobId,
    change: ControlChange,
) -> Result<JobControls, Failure> {
    let reply = store
        .control_job(job, change, now_ms())
        .await
        .map_err(|e| unavailable(settings, e))?;
    let controls = match reply {
        ControlReply::Applied(controls) => controls,
        ControlReply::Unknown => {
            return Err(Failure::new(
                exit::USAGE,
                format!("no job {job} in namespace {}", settings.namespace),
            ));
        }
        ControlReply::Ended(state) => {
            return Err(Failure::new(
                exit::USAGE,
                format!(
                    "job {job} has ended ({state}): {} applies only to a job that runs",
                    match change {
                        ControlChange::ClearLimits => "limit --clear",
                        other => other.as_str(),
                    }
                ),
            ));
        }
    };
    // Stored already: a worker that misses the announcement reads it within a second.
    if let Err(e) = fleet
        .announce(FleetEvent::JobControl {
            job: job.to_string(),
        })
        .await
    {
        volley_core::errln!(
            "volley: warning: control stored but not announced ({e}); workers read it within a second"
        );
    }
    Ok(controls)
}

/// The change `volley limit` (or the dashboard's limit form) asks for, checked.
///
/// # Errors
/// A usage [`Failure`] naming the bad value.
pub(crate) fn limit_values(
    rate: Option<f64>,
    concurrency: Option<u32>,
    clear: bool,
) -> Result<ControlChange, Failure> {
    if clear {
        return Ok(ControlChange::ClearLimits);
    }
    if rate.is_none() && concurrency.is_none() {
        return Err(Failure::new(
            exit::USAGE,
            "volley limit needs --rate R, --concurrency N or --clear",
        ));
    }
    if rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err(Failure::new(
            exit::USAGE,
            "--rate must be a positive number",
        ));
    }
    if concurrency == Some(0) {
        return Err(Failure::new(
            exit::USAGE,
            "--concurrency must be at least 1",
        ));
    }
    Ok(ControlChange::Limit { rate, concurrency })
}

/// `rate 40/s, concurrency 8 per worker`, with the spec's values named as such.
pub(crate) fn describe_limits(controls: &JobControls) -> String {
    let rate = controls
        .rate
        .map_or_else(|| "the spec's rate".to_string(), |r| format!("rate {r}/s"));
    let concurrency = controls.concurrency.map_or_else(
        || "the spec's concurrency".to_string(),
        |n| format!("concurrency {n} per worker"),
    );
    format!("{rate}, {concurrency}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(rate: Option<f64>, concurrency: Option<u32>, clear: bool) -> LimitArgs {
        LimitArgs {
            job: "j".into(),
            rate,
            concurrency,
            clear,
            json: false,
            connection: Connection {
                config: None,
                namespace: None,
            },
        }
    }

    #[test]
    fn a_limit_needs_a_positive_rate_or_concurrency_or_clear() {
        assert!(limit_change(&args(None, None, false)).is_err());
        assert!(limit_change(&args(Some(0.0), None, false)).is_err());
        assert!(limit_change(&args(Some(f64::NAN), None, false)).is_err());
        assert!(limit_change(&args(None, Some(0), false)).is_err());
        assert_eq!(
            limit_change(&args(Some(40.0), None, false)).ok(),
            Some(ControlChange::Limit {
                rate: Some(40.0),
                concurrency: None
            })
        );
        assert_eq!(
            limit_change(&args(None, None, true)).ok(),
            Some(ControlChange::ClearLimits)
        );
    }
}
