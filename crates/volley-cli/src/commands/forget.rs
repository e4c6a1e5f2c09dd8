//! `volley forget JOB [--json]`: deletes a finished job's data now, instead of at the end of
//! its retention.

use super::{Connection, job_id, lookup, unavailable};
use crate::exit::{self, Failure};
use crate::render::print_json;
use volley_core::StoreError;

/// Delete a finished job's data (results, counters, kept inputs) now.
#[derive(Debug, clap::Args)]
pub struct ForgetArgs {
    /// The job id.
    pub job: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// What `forget --json` prints.
#[derive(Debug, serde::Serialize)]
struct Forgotten<'a> {
    job: &'a str,
    forgotten: bool,
}

/// Runs `forget`.
///
/// # Errors
/// A [`Failure`] with the exit code: 75 while the job runs.
pub async fn run(args: ForgetArgs) -> Result<(), Failure> {
    let job = job_id(&args.job)?;
    let (settings, store) = args.connection.store()?;
    // Named as every job command names a job that is not there (exit 2).
    lookup::job_status(&settings, &store, &job).await?;
    match store.forget_job(&job).await {
        Ok(()) => {}
        // The store decides, in one step with the deletion, whether the job has ended.
        Err(StoreError::Conflict(reason)) => {
            return Err(Failure::new(exit::TRY_LATER, reason));
        }
        Err(e) => return Err(unavailable(&settings, e)),
    }
    if args.json {
        print_json(&Forgotten {
            job: job.as_str(),
            forgotten: true,
        })
    } else {
        volley_core::outln!("forgot job {job}: its results, counters and kept inputs are deleted");
        Ok(())
    }
}
