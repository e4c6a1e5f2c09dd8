//! `volley migrate [--dry-run] [--json]`: applies the namespace's pending migrations
//! (`migrations/`, compiled in) to RabbitMQ and records them in Redis, under a lock.

use super::Connection;
use crate::exit::Failure;
use crate::render::print_json;
use volley_core::schema::{self, Migration, Report};

/// Apply the namespace's pending migrations (broker topology, schema version).
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Print what would be done; declare and record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// What `migrate --json` prints.
#[derive(Debug, serde::Serialize)]
struct Migrated<'a> {
    namespace: &'a str,
    dry_run: bool,
    from: u32,
    to: u32,
    known: u32,
    migrations: Vec<Step>,
}

#[derive(Debug, serde::Serialize)]
struct Step {
    version: u32,
    file: &'static str,
    description: String,
    checksum: String,
    broker: Vec<String>,
}

/// Runs `migrate`.
///
/// # Errors
/// A [`Failure`]: 78 for a schema newer than this binary knows or an applied migration that
/// changed, 75 while another run holds the lock past its wait, 69 for a service down.
pub async fn run(args: MigrateArgs) -> Result<(), Failure> {
    let (settings, store) = args.connection.store()?;
    let broker = args.connection.broker(&settings, "volley migrate");
    let holder = schema::holder("volley migrate");
    let report = schema::migrate(&store, &broker, &holder, args.dry_run, "volley")
        .await
        .map_err(|e| Failure::new(e.exit_code(), e))?;
    let ns = settings.namespace.as_str();
    let steps = |m: &Migration| -> Vec<String> {
        m.broker
            .iter()
            .map(|s| s.resolve(&settings.namespace).to_string())
            .collect()
    };
    if args.json {
        return print_json(&Migrated {
            namespace: ns,
            dry_run: args.dry_run,
            from: report.from,
            to: report.to,
            known: schema::current(),
            migrations: report
                .applied
                .iter()
                .map(|m| Step {
                    version: m.version,
                    file: m.file,
                    description: m.description.clone(),
                    checksum: m.checksum.clone(),
                    broker: steps(m),
                })
                .collect(),
        });
    }
    print_text(ns, &report, args.dry_run, steps);
    Ok(())
}

fn print_text(ns: &str, report: &Report, dry_run: bool, steps: impl Fn(&Migration) -> Vec<String>) {
    if report.applied.is_empty() {
        volley_core::outln!("namespace {ns} is at schema {}: nothing to do", report.from);
        return;
    }
    let verb = if dry_run { "would apply" } else { "applied" };
    for m in &report.applied {
        volley_core::outln!(
            "{verb} {} ({}): {}",
            m.file,
            &m.checksum[..12],
            m.description
        );
        for step in steps(m) {
            volley_core::outln!("  {step}");
        }
        volley_core::outln!("  record schema version {} in Redis", m.version);
    }
    if dry_run {
        volley_core::outln!(
            "namespace {ns}: schema {} -> {} (dry run: nothing was declared or recorded)",
            report.from,
            report.to
        );
    } else {
        volley_core::outln!("namespace {ns}: schema {} -> {}", report.from, report.to);
    }
}
