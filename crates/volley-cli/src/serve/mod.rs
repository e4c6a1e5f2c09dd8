//! `volley serve`: the dashboard and its JSON API, from this binary (pages and scripts are
//! compiled in; no build step). Everything is read from Redis (and the broker), so a
//! restarted dashboard shows the same figures at once and any number of them agree.

mod api;
mod auth;
mod fleet;
mod pages;
mod redact;

use crate::commands::{Connection, hosts::open_fleet};
use crate::exit::{self, Failure};
use std::sync::Arc;
use volley_amqp::AmqpBroker;
use volley_redis::{RedisFleet, RedisStore};
use volley_runtime::Settings;

/// Serve the dashboard and its JSON API.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Binds to this machine only unless told otherwise: put an
    /// authenticating proxy in front before binding to other interfaces.
    #[arg(long, env = "VOLLEY_SERVE_ADDR", default_value = "127.0.0.1:8686")]
    pub addr: String,
    /// A file whose first line is the token that allows actions (cancel, pause, resume,
    /// limit); also VOLLEY_DASHBOARD_TOKEN. Without one the dashboard is read-only.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// What every request reads from.
pub(crate) struct Dashboard {
    pub settings: Settings,
    pub store: RedisStore,
    pub fleet: Arc<RedisFleet>,
    pub broker: Arc<AmqpBroker>,
    pub access: auth::Access,
}

/// Runs `serve` until SIGINT or SIGTERM.
///
/// # Errors
/// A [`Failure`]: 69 when Redis cannot be reached at start, 2 when the address cannot be
/// listened on.
pub async fn run(args: ServeArgs) -> Result<(), Failure> {
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    Failure::new(exit::USAGE, format!("cannot read {}: {e}", path.display()))
                })?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        None => std::env::var("VOLLEY_DASHBOARD_TOKEN").ok(),
    };
    let access = auth::Access::new(token);
    let (settings, store) = args.connection.store()?;
    store
        .check_server()
        .await
        .map_err(|e| crate::commands::unavailable(&settings, e))?;
    let fleet = open_fleet(&args.connection)?;
    let broker = Arc::new(args.connection.broker(&settings, "volley serve"));
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot listen on {}: {e}", args.addr)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::new(exit::INTERNAL, e))?;
    let namespace = settings.namespace.to_string();
    let mode = if access.read_only() {
        "read-only: no token"
    } else {
        "actions need the token"
    };
    let state = Arc::new(Dashboard {
        settings,
        store,
        fleet,
        broker,
        access,
    });
    let app = api::routes().merge(pages::routes()).with_state(state);
    volley_core::outln!("volley serve: http://{local}/ (namespace {namespace}, {mode})");
    axum::serve(listener, app)
        .with_graceful_shutdown(volley_runtime::stop_signal())
        .await
        .map_err(|e| Failure::new(exit::INTERNAL, e))
}
