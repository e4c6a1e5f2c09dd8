//! Versioned migrations of a namespace (`migrations/` at the top of the repository, compiled
//! in): numbered, checksummed steps for the broker topology, and the schema version each
//! namespace records in the store. `volley migrate` applies them; the producer applies them
//! on the fly to a namespace that is brand new; the producer and the workers refuse a
//! namespace whose schema is older than they need or newer than they know.

use crate::{BrokerError, Namespace, StoreError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// The migration files, in order: the number in each name is its version.
const FILES: &[(&str, &str)] = &[(
    "0001_namespace.toml",
    include_str!("../../../migrations/0001_namespace.toml"),
)];

/// The oldest schema these binaries run against.
pub const REQUIRED: u32 = 1;

/// The newest schema these binaries know: the last migration's version.
pub fn current() -> u32 {
    u32::try_from(FILES.len()).unwrap_or(u32::MAX)
}

/// One declaration on the broker, with `{ns}` still in its names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "declare", rename_all = "snake_case", deny_unknown_fields)]
pub enum BrokerStep {
    /// A durable exchange.
    Exchange {
        /// Its name.
        name: String,
        /// `direct`, `topic`, `fanout` or `headers`.
        #[serde(rename = "type")]
        kind: String,
    },
    /// A durable queue with arguments (`x-queue-type`, …), strings or integers.
    Queue {
        /// Its name.
        name: String,
        /// Its arguments.
        #[serde(default)]
        arguments: BTreeMap<String, ArgValue>,
    },
    /// A binding of a queue to an exchange.
    Binding {
        /// The queue.
        queue: String,
        /// The exchange.
        exchange: String,
        /// The routing key.
        routing_key: String,
    },
}

/// A queue argument's value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(untagged)]
pub enum ArgValue {
    /// A string (`quorum`).
    Text(String),
    /// An integer (`x-delivery-limit`).
    Int(i64),
}

impl std::fmt::Display for ArgValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text(s) => f.write_str(s),
            Self::Int(n) => write!(f, "{n}"),
        }
    }
}

impl BrokerStep {
    /// The step for namespace `ns`: `{ns}` replaced in every name.
    pub fn resolve(&self, ns: &Namespace) -> Self {
        let r = |s: &String| s.replace("{ns}", ns.as_str());
        match self {
            Self::Exchange { name, kind } => Self::Exchange {
                name: r(name),
                kind: kind.clone(),
            },
            Self::Queue { name, arguments } => Self::Queue {
                name: r(name),
                arguments: arguments.clone(),
            },
            Self::Binding {
                queue,
                exchange,
                routing_key,
            } => Self::Binding {
                queue: r(queue),
                exchange: r(exchange),
                routing_key: r(routing_key),
            },
        }
    }
}

impl std::fmt::Display for BrokerStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exchange { name, kind } => write!(f, "declare exchange {name} ({kind}, durable)"),
            Self::Queue { name, arguments } => {
                write!(f, "declare queue {name} (durable")?;
                for (k, v) in arguments {
                    write!(f, ", {k}={v}")?;
                }
                f.write_str(")")
            }
            Self::Binding {
                queue,
                exchange,
                routing_key,
            } => write!(f, "bind queue {queue} to {exchange} with key {routing_key}"),
        }
    }
}

/// One migration file.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Its number.
    pub version: u32,
    /// Its file name.
    pub file: &'static str,
    /// What it does, in a line.
    pub description: String,
    /// SHA-256 of the file, hex.
    pub checksum: String,
    /// Its broker declarations, in order.
    pub broker: Vec<BrokerStep>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrationFile {
    description: String,
    #[serde(default)]
    broker: Vec<BrokerStep>,
}

/// The compiled-in migrations, in order, parsed once per process (every broker connection
/// declares their steps).
///
/// # Panics
/// Never in a released build: a malformed or misnumbered file fails the unit tests.
pub fn migrations() -> &'static [Migration] {
    static PARSED: std::sync::LazyLock<Vec<Migration>> = std::sync::LazyLock::new(|| {
        FILES
            .iter()
            .zip(1u32..)
            .map(|(&(file, text), version)| {
                parse(file, text, version).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    });
    &PARSED
}

fn parse(file: &'static str, text: &str, version: u32) -> Result<Migration, String> {
    let number: u32 = file
        .split('_')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("migrations/{file}: the name does not start with its number"))?;
    if number != version {
        return Err(format!(
            "migrations/{file}: numbered {number}, expected {version}"
        ));
    }
    let parsed: MigrationFile =
        toml::from_str(text).map_err(|e| format!("migrations/{file}: {e}"))?;
    Ok(Migration {
        version,
        file,
        description: parsed.description,
        checksum: sha256_hex(text),
        broker: parsed.broker,
    })
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A migration as the store recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    /// Its number.
    pub version: u32,
    /// Its checksum when it was applied.
    pub checksum: String,
    /// When, in ms since the epoch.
    pub applied_at_ms: u64,
    /// Who applied it (`volley migrate` or a producer, with the host).
    pub applied_by: String,
}

/// What the store knows of a namespace's schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaRecord {
    /// The recorded version; `None` when no migration was ever recorded.
    pub version: Option<u32>,
    /// The applied migrations, by version.
    pub applied: Vec<Applied>,
    /// Whether the namespace holds jobs (or ever did): without a version, it was made before
    /// migrations existed.
    pub has_data: bool,
}

/// How a namespace's schema stands against these binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    /// At a version these binaries run against.
    Compatible(u32),
    /// Nothing in it yet: the producer's first job applies the migrations.
    Fresh,
    /// Older than these binaries need (0: made before migrations): `volley migrate`.
    Older {
        /// Its version.
        have: u32,
    },
    /// Newer than these binaries know: upgrade them.
    Newer {
        /// Its version.
        have: u32,
    },
}

impl SchemaRecord {
    /// How the namespace stands against these binaries.
    pub fn compatibility(&self) -> Compatibility {
        match self.version {
            None if !self.has_data => Compatibility::Fresh,
            None => Compatibility::Older { have: 0 },
            Some(v) if v > current() => Compatibility::Newer { have: v },
            Some(v) if v < REQUIRED => Compatibility::Older { have: v },
            Some(v) => Compatibility::Compatible(v),
        }
    }
}

/// Why a namespace cannot be used or migrated.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The namespace is older than the binary needs.
    #[error(
        "namespace {ns} has schema {have}{made}, but this {binary} needs {REQUIRED}: run `volley migrate` (--dry-run shows what it does)",
        made = if *have == 0 { " (made before migrations)" } else { "" }
    )]
    Older {
        /// The namespace.
        ns: Namespace,
        /// Its version.
        have: u32,
        /// The binary asking.
        binary: &'static str,
    },
    /// The namespace is newer than the binary knows.
    #[error(
        "namespace {ns} has schema {have}, newer than this {binary} knows ({}): upgrade it to the version that migrated the namespace",
        current()
    )]
    Newer {
        /// The namespace.
        ns: Namespace,
        /// Its version.
        have: u32,
        /// The binary asking.
        binary: &'static str,
    },
    /// An applied migration's file changed since.
    #[error(
        "migration {version:04} changed since it was applied to namespace {ns} (checksum {recorded}, now {now}): migrations are never edited once released; restore it and add a new one"
    )]
    Changed {
        /// The namespace.
        ns: Namespace,
        /// The migration.
        version: u32,
        /// Its recorded checksum.
        recorded: String,
        /// The file's checksum now.
        now: String,
    },
    /// Another `migrate` held the lock for too long.
    #[error("another migration of namespace {0} is running and did not finish in time; try again")]
    Busy(Namespace),
    /// The lock was lost mid-way (it expired): what was recorded stays; run again.
    #[error("the migration lock of namespace {0} expired mid-way; run `volley migrate` again")]
    LockLost(Namespace),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The broker failed or refused a declaration.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl SchemaError {
    /// The exit code that says it: a schema that does not fit is [`crate::exit::CONFIG`],
    /// a lock held by another run [`crate::exit::TRY_LATER`], a service down
    /// [`crate::exit::UNAVAILABLE`].
    pub fn exit_code(&self) -> u8 {
        use crate::exit::{CONFIG, TRY_LATER, UNAVAILABLE};
        match self {
            Self::Older { .. } | Self::Newer { .. } | Self::Changed { .. } => CONFIG,
            Self::Broker(BrokerError::Topology(_)) => CONFIG,
            Self::Busy(_) | Self::LockLost(_) => TRY_LATER,
            Self::Store(_) | Self::Broker(_) => UNAVAILABLE,
        }
    }
}

/// Who is migrating, for the record: the binary, the host and the process.
pub fn holder(binary: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".into());
    format!("{binary}@{host}:{}", std::process::id())
}

/// Where migrations are recorded, under a lock.
pub trait SchemaStore: Send + Sync {
    /// The namespace.
    fn schema_namespace(&self) -> &Namespace;

    /// The recorded schema.
    ///
    /// # Errors
    /// [`StoreError`].
    fn read_schema(&self) -> impl Future<Output = Result<SchemaRecord, StoreError>> + Send;

    /// Takes (or renews) the namespace's migration lock for `ttl`; false while another
    /// holder has it.
    ///
    /// # Errors
    /// [`StoreError`].
    fn lock_schema(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records `applied` and sets the version to it, if `holder` still holds the lock;
    /// false when it does not.
    ///
    /// # Errors
    /// [`StoreError`].
    fn record_migration(
        &self,
        holder: &str,
        applied: &Applied,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives the lock up, if `holder` has it.
    ///
    /// # Errors
    /// [`StoreError`].
    fn unlock_schema(&self, holder: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where the broker steps are declared.
pub trait SchemaBroker: Send + Sync {
    /// Declares one step (idempotent: a declaration that exists alike is a no-op).
    ///
    /// # Errors
    /// [`BrokerError::Topology`] when it exists otherwise.
    fn apply_step(&self, step: &BrokerStep)
    -> impl Future<Output = Result<(), BrokerError>> + Send;
}

/// The migrations a namespace lacks, after checking the applied ones are unchanged.
///
/// # Errors
/// [`SchemaError::Changed`] or [`SchemaError::Newer`].
pub fn pending(
    ns: &Namespace,
    record: &SchemaRecord,
    all: &[Migration],
    binary: &'static str,
) -> Result<Vec<Migration>, SchemaError> {
    if let Compatibility::Newer { have } = record.compatibility() {
        return Err(SchemaError::Newer {
            ns: ns.clone(),
            have,
            binary,
        });
    }
    for applied in &record.applied {
        if let Some(m) = all.iter().find(|m| m.version == applied.version)
            && m.checksum != applied.checksum
        {
            return Err(SchemaError::Changed {
                ns: ns.clone(),
                version: m.version,
                recorded: applied.checksum.clone(),
                now: m.checksum.clone(),
            });
        }
    }
    let at = record.version.unwrap_or(0);
    Ok(all.iter().filter(|m| m.version > at).cloned().collect())
}

/// What a migration run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The version before.
    pub from: u32,
    /// The migrations applied (or, for a dry run, to apply).
    pub applied: Vec<Migration>,
    /// The version after.
    pub to: u32,
}

/// How long a migration holds the lock before it must renew it, and how long a second run
/// waits for the first.
const LOCK_TTL: Duration = Duration::from_secs(30);
const LOCK_WAIT: Duration = Duration::from_secs(60);
const LOCK_POLL: Duration = Duration::from_millis(200);

/// Applies the pending migrations under the namespace's lock: a second run at the same time
/// waits for the first, then finds nothing to do. A dry run only reads.
///
/// # Errors
/// [`SchemaError`].
pub async fn migrate<S: SchemaStore, B: SchemaBroker>(
    store: &S,
    broker: &B,
    holder: &str,
    dry_run: bool,
    binary: &'static str,
) -> Result<Report, SchemaError> {
    let ns = store.schema_namespace().clone();
    let all = migrations();
    if dry_run {
        return run_pending(store, None::<&B>, holder, &ns, all, binary).await;
    }
    let started = tokio::time::Instant::now();
    while !store.lock_schema(holder, LOCK_TTL).await? {
        if started.elapsed() > LOCK_WAIT {
            return Err(SchemaError::Busy(ns));
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
    let done = run_pending(store, Some(broker), holder, &ns, all, binary).await;
    // A lock left behind expires on its own; giving it up now lets a waiting run go on.
    let _ = store.unlock_schema(holder).await;
    done
}

/// Reads the schema and applies what is pending, under the lock; without a broker (a dry
/// run) only reports what is pending.
async fn run_pending<S: SchemaStore, B: SchemaBroker>(
    store: &S,
    broker: Option<&B>,
    holder: &str,
    ns: &Namespace,
    all: &[Migration],
    binary: &'static str,
) -> Result<Report, SchemaError> {
    let record = store.read_schema().await?;
    let todo = pending(ns, &record, all, binary)?;
    let from = record.version.unwrap_or(0);
    let report = Report {
        from,
        to: todo.last().map_or(from, |m| m.version),
        applied: todo,
    };
    let Some(broker) = broker else {
        return Ok(report);
    };
    for m in &report.applied {
        if !store.lock_schema(holder, LOCK_TTL).await? {
            return Err(SchemaError::LockLost(ns.clone()));
        }
        for step in &m.broker {
            broker.apply_step(&step.resolve(ns)).await?;
        }
        let applied = Applied {
            version: m.version,
            checksum: m.checksum.clone(),
            applied_at_ms: crate::time::now_ms(),
            applied_by: holder.to_string(),
        };
        if !store.record_migration(holder, &applied).await? {
            return Err(SchemaError::LockLost(ns.clone()));
        }
    }
    Ok(report)
}

/// The start-up check of the producer and the workers: `Ok` when they may run. A fresh
/// namespace is migrated here when `migrate_fresh` (the producer, whose first job makes the
/// namespace); the workers run on a fresh one as they always did, declaring what they need.
///
/// # Errors
/// [`SchemaError::Older`] or [`SchemaError::Newer`] naming what to do, or a store or broker
/// failure.
pub async fn ensure_compatible<S: SchemaStore, B: SchemaBroker>(
    store: &S,
    broker: &B,
    holder: &str,
    migrate_fresh: bool,
    binary: &'static str,
) -> Result<Compatibility, SchemaError> {
    let ns = store.schema_namespace().clone();
    let record = store.read_schema().await?;
    match record.compatibility() {
        Compatibility::Fresh if migrate_fresh => {
            migrate(store, broker, holder, false, binary).await?;
            Ok(Compatibility::Fresh)
        }
        ok @ (Compatibility::Fresh | Compatibility::Compatible(_)) => Ok(ok),
        Compatibility::Older { have } => Err(SchemaError::Older { ns, have, binary }),
        Compatibility::Newer { have } => Err(SchemaError::Newer { ns, have, binary }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespace {
        Namespace::parse("shop").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_files_parse_are_numbered_in_order_and_the_first_makes_todays_namespace() {
        let all = migrations();
        assert_eq!(all.len() as u32, current());
        assert!(all.iter().zip(1..).all(|(m, n)| m.version == n));
        let steps: Vec<String> = all[0]
            .broker
            .iter()
            .map(|s| s.resolve(&ns()).to_string())
            .collect();
        assert_eq!(
            steps,
            [
                "declare exchange shop (direct, durable)",
                "declare queue shop.dead (durable, x-queue-type=quorum)",
                "bind queue shop.dead to shop with key dead",
            ]
        );
        assert_eq!(all[0].checksum.len(), 64);
    }

    #[test]
    fn a_misnumbered_or_unknown_field_file_is_refused_naming_it() {
        let e = parse("0003_x.toml", "description = \"x\"\n", 2)
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("migrations/0003_x.toml: numbered 3, expected 2"),
            "{e}"
        );
        let e = parse(
            "0002_x.toml",
            "description = \"x\"\n[[broker]]\ndeclare = \"queue\"\nname = \"q\"\ndurable = false\n",
            2,
        )
        .err()
        .unwrap_or_default();
        assert!(e.contains("0002_x.toml") && e.contains("durable"), "{e}");
    }

    #[test]
    fn compatibility_of_each_kind_of_namespace() {
        let at = |version, has_data| SchemaRecord {
            version,
            applied: vec![],
            has_data,
        };
        assert_eq!(at(None, false).compatibility(), Compatibility::Fresh);
        assert_eq!(
            at(None, true).compatibility(),
            Compatibility::Older { have: 0 }
        );
        assert_eq!(
            at(Some(1), true).compatibility(),
            Compatibility::Compatible(1)
        );
        assert_eq!(
            at(Some(current() + 1), true).compatibility(),
            Compatibility::Newer {
                have: current() + 1
            }
        );
    }

    #[test]
    fn pending_skips_the_applied_and_refuses_a_changed_one() {
        let all = migrations();
        let legacy = SchemaRecord {
            version: None,
            applied: vec![],
            has_data: true,
        };
        assert_eq!(
            pending(&ns(), &legacy, all, "volley").map(|p| p.len()).ok(),
            Some(all.len())
        );
        let applied = Applied {
            version: 1,
            checksum: all[0].checksum.clone(),
            applied_at_ms: 0,
            applied_by: "t".into(),
        };
        let done = SchemaRecord {
            version: Some(1),
            applied: vec![applied.clone()],
            has_data: true,
        };
        assert_eq!(
            pending(&ns(), &done, all, "volley").map(|p| p.len()).ok(),
            Some(all.len() - 1)
        );
        let edited = SchemaRecord {
            applied: vec![Applied {
                checksum: "0".repeat(64),
                ..applied
            }],
            ..done
        };
        let e = pending(&ns(), &edited, all, "volley")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("migration 0001 changed since it was applied to namespace shop"),
            "{e}"
        );
    }

    #[test]
    fn the_errors_say_what_to_run() {
        let older = SchemaError::Older {
            ns: ns(),
            have: 0,
            binary: "volley-worker",
        }
        .to_string();
        assert_eq!(
            older,
            "namespace shop has schema 0 (made before migrations), but this volley-worker needs 1: run `volley migrate` (--dry-run shows what it does)"
        );
        let newer = SchemaError::Newer {
            ns: ns(),
            have: 9,
            binary: "volley-producer",
        }
        .to_string();
        assert!(
            newer.contains("newer than this volley-producer knows"),
            "{newer}"
        );
    }
}
