//! `volley hosts`: the fleet's view of each target host (rate limit, pause, breaker), and
//! fleet-level host limits that every job calling the host shares.

use super::{Connection, unavailable};
use crate::exit::{self, Failure};
use crate::render::print_json;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use volley_core::governor::{BreakerPhase, FleetEvent, FleetState, HostLimit, host_key};
use volley_core::time::now_ms;
use volley_redis::{RedisFleet, RedisOptions};

/// Show target hosts, or set a host's fleet-wide rate limit.
#[derive(Debug, clap::Args)]
pub struct HostsArgs {
    #[command(subcommand)]
    pub action: Option<HostsAction>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// What to do with hosts.
#[derive(Debug, clap::Subcommand)]
pub enum HostsAction {
    /// Cap requests per second to a host across every job and worker.
    Limit {
        /// The host, as a URL: https://api.example.com
        host: String,
        /// Requests per second.
        #[arg(long)]
        rate: f64,
        /// Requests allowed at once above the steady rate (default: a tenth of a second's
        /// worth, at least 1).
        #[arg(long)]
        burst: Option<u32>,
    },
    /// Remove a host's fleet-wide rate limit.
    Unlimit {
        /// The host, as a URL.
        host: String,
    },
}

/// One host as `volley hosts` and `volley status` show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostView {
    /// `scheme://host:port`.
    pub host: String,
    /// The breaker, in words: closed, open (probe in 3.2s), ramping (40% of traffic).
    pub breaker: String,
    /// Seconds left of a fleet-wide pause (a `Retry-After`), if one is in force.
    pub paused_secs: Option<f64>,
    /// The fleet-level rate limit, if declared.
    pub limit: Option<HostLimit>,
    /// While the breaker is open, why: the last failure (`connect: … Connection refused`,
    /// `status: HTTP 500 Internal Server Error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl HostView {
    /// One aligned line.
    pub fn text(&self) -> String {
        let limit = self.limit.map_or_else(
            || "no fleet limit".to_string(),
            |l| format!("{} req/s (burst {})", l.rate, l.burst),
        );
        let pause = self
            .paused_secs
            .map(|s| format!("   paused {s:.1}s more"))
            .unwrap_or_default();
        let last = self
            .last_error
            .as_deref()
            .map(|e| format!("\n          last error: {}", crate::render::escape(e)))
            .unwrap_or_default();
        format!(
            "{}   breaker {}   {limit}{pause}{last}",
            self.host, self.breaker
        )
    }
}

/// Parses a host argument into the key the fleet uses.
///
/// # Errors
/// A usage [`Failure`] when it is not an http(s) URL.
pub fn parse_host(text: &str) -> Result<String, Failure> {
    let url = url::Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                format!("'{text}' is not a host URL (e.g. https://api.example.com)"),
            )
        })?;
    Ok(host_key(&url))
}

/// Every host the fleet knows something about.
///
/// # Errors
/// A store error.
pub async fn host_views(
    fleet: &dyn FleetState,
) -> Result<BTreeMap<String, HostView>, volley_core::StoreError> {
    let now = now_ms();
    let mut out: BTreeMap<String, HostView> = BTreeMap::new();
    let view = |out: &mut BTreeMap<String, HostView>, host: &str| {
        out.entry(host.to_string())
            .or_insert_with(|| HostView {
                host: host.to_string(),
                breaker: BreakerPhase::Closed.describe(now),
                ..HostView::default()
            })
            .clone()
    };
    for event in fleet.current().await? {
        match event {
            FleetEvent::Pause { host, until_ms } => {
                let mut v = view(&mut out, &host);
                v.paused_secs = Some(until_ms.saturating_sub(now) as f64 / 1000.0);
                out.insert(host, v);
            }
            FleetEvent::Breaker { host, phase, cause } => {
                let mut v = view(&mut out, &host);
                v.breaker = phase.describe(now);
                v.last_error = cause;
                out.insert(host, v);
            }
            // Not a host's: `current` never returns one.
            FleetEvent::JobControl { .. } | FleetEvent::JobAdded { .. } => {}
        }
    }
    for (host, limit) in fleet.host_limits().await? {
        let mut v = view(&mut out, &host);
        v.limit = Some(limit);
        out.insert(host, v);
    }
    Ok(out)
}

/// Opens the fleet state of the configured namespace.
///
/// # Errors
/// A [`Failure`] when the settings are bad.
pub fn open_fleet(connection: &Connection) -> Result<Arc<RedisFleet>, Failure> {
    let (settings, store) = connection.store()?;
    RedisFleet::start(store, &RedisOptions::from_settings(&settings))
        .map_err(|e| Failure::new(exit::UNAVAILABLE, e))
}

/// Runs `hosts`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn run(args: HostsArgs) -> Result<(), Failure> {
    let settings = args.connection.settings()?;
    let fleet = open_fleet(&args.connection)?;
    match args.action {
        Some(HostsAction::Limit { host, rate, burst }) => {
            let host = parse_host(&host)?;
            if !(rate.is_finite() && rate > 0.0) {
                return Err(Failure::new(
                    exit::USAGE,
                    "--rate must be a positive number",
                ));
            }
            let burst = burst.unwrap_or_else(|| (rate / 10.0).ceil().max(1.0) as u32);
            fleet
                .set_host_limit(&host, Some(HostLimit { rate, burst }))
                .await
                .map_err(|e| unavailable(&settings, e))?;
            volley_core::outln!(
                "{host}: at most {rate} requests/s (burst {burst}) across the fleet; workers apply it within 10s"
            );
            return Ok(());
        }
        Some(HostsAction::Unlimit { host }) => {
            let host = parse_host(&host)?;
            fleet
                .set_host_limit(&host, None)
                .await
                .map_err(|e| unavailable(&settings, e))?;
            volley_core::outln!("{host}: fleet limit removed (job limits still apply)");
            return Ok(());
        }
        None => {}
    }
    let views = host_views(fleet.as_ref())
        .await
        .map_err(|e| unavailable(&settings, e))?;
    if args.json {
        let list: Vec<&HostView> = views.values().collect();
        print_json(&list)?;
    } else if views.is_empty() {
        volley_core::outln!("no host has a limit, a pause or an open breaker");
    } else {
        for v in views.values() {
            volley_core::outln!("{}", v.text());
        }
    }
    Ok(())
}
