//! Connection settings shared by every binary, layered as operators expect:
//! defaults < config file < `VOLLEY_*` environment < command-line flags. They are parsed once,
//! here, into typed values; the adapters build themselves from [`Settings`]
//! (`AmqpOptions::from_settings`, `RedisStore::from_settings`), so the binaries, the CLI and
//! the test kit reach the broker and the store the same way.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;
use volley_core::Namespace;

/// Where the broker and the store are, and how the deployment names its queues and keys.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// RabbitMQ URL (`VOLLEY_AMQP_URL`). Holds a password: never printed.
    pub amqp_url: SecretString,
    /// Redis URL (`VOLLEY_REDIS_URL`). May hold a password: never printed.
    pub redis_url: SecretString,
    /// Prefix of queues and keys (`VOLLEY_NAMESPACE`).
    pub namespace: Namespace,
    /// Deliveries of a chunk before it is dead-lettered (`VOLLEY_DELIVERY_LIMIT`), at least 1.
    pub delivery_limit: u32,
    /// How long a finished job's state is kept (`VOLLEY_RETENTION`, e.g. "7d").
    pub retention: Duration,
}

/// The layers as written, before the values are checked: what `config` deserializes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    amqp_url: SecretString,
    redis_url: SecretString,
    namespace: String,
    delivery_limit: u32,
    retention: String,
}

/// A setting that could not be loaded, naming its key.
#[derive(Debug, thiserror::Error)]
#[error("settings: {0}")]
pub struct SettingsError(String);

/// Default AMQP URL.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Default Redis URL.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

impl Settings {
    /// Loads the layers. `file` is optional; `overrides` are flag values (key, value), applied
    /// last when present.
    ///
    /// # Errors
    /// [`SettingsError`] naming the key that is wrong.
    pub fn load(
        file: Option<&Path>,
        overrides: &[(&str, Option<String>)],
    ) -> Result<Self, SettingsError> {
        Self::load_from(file, std::env::vars(), overrides)
    }

    /// [`Settings::load`] with the environment given, for tests.
    ///
    /// # Errors
    /// [`SettingsError`] naming the key that is wrong.
    pub fn load_from(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
        overrides: &[(&str, Option<String>)],
    ) -> Result<Self, SettingsError> {
        let err = |e: config::ConfigError| SettingsError(e.to_string());
        let mut builder = config::Config::builder()
            .set_default("amqp_url", DEFAULT_AMQP_URL)
            .map_err(err)?
            .set_default("redis_url", DEFAULT_REDIS_URL)
            .map_err(err)?
            .set_default("namespace", "volley")
            .map_err(err)?
            .set_default("delivery_limit", 20)
            .map_err(err)?
            .set_default("retention", "7d")
            .map_err(err)?;
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        // Only the settings' own variables: VOLLEY_* is also used by flags (VOLLEY_PREFETCH),
        // logging and tests, which must not be read as unknown settings.
        let known: std::collections::HashMap<String, String> = env
            .filter(|(k, v)| {
                KEYS.iter()
                    .any(|key| k == &format!("VOLLEY_{}", key.to_uppercase()))
                    && !v.is_empty()
            })
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("VOLLEY")
                .prefix_separator("_")
                .separator("__")
                .source(Some(known)),
        );
        for (key, value) in overrides {
            builder = builder
                .set_override_option(*key, value.clone())
                .map_err(err)?;
        }
        let written: Written = builder
            .build()
            .map_err(err)?
            .try_deserialize()
            .map_err(err)?;
        Self::check(written)
    }

    /// Turns the written values into typed ones, naming the key of the first that is wrong.
    fn check(written: Written) -> Result<Self, SettingsError> {
        let namespace = Namespace::parse(&written.namespace)
            .map_err(|e| SettingsError(format!("namespace: {e}")))?;
        let retention = humantime::parse_duration(&written.retention).map_err(|_| {
            SettingsError(format!(
                "retention: invalid duration '{}'",
                written.retention
            ))
        })?;
        if written.delivery_limit == 0 {
            return Err(SettingsError("delivery_limit: must be at least 1".into()));
        }
        Ok(Self {
            amqp_url: written.amqp_url,
            redis_url: written.redis_url,
            namespace,
            delivery_limit: written.delivery_limit,
            retention,
        })
    }

    /// The AMQP URL, for connecting only.
    pub fn amqp_url(&self) -> &str {
        self.amqp_url.expose_secret()
    }

    /// The Redis URL, for connecting only.
    pub fn redis_url(&self) -> &str {
        self.redis_url.expose_secret()
    }
}

/// The settings' keys.
const KEYS: &[&str] = &[
    "amqp_url",
    "redis_url",
    "namespace",
    "delivery_limit",
    "retention",
];

/// The environment variable names of the settings, for the README and `--help`.
pub const ENVIRONMENT: &[&str] = &[
    "VOLLEY_AMQP_URL",
    "VOLLEY_REDIS_URL",
    "VOLLEY_NAMESPACE",
    "VOLLEY_DELIVERY_LIMIT",
    "VOLLEY_RETENTION",
    "VOLLEY_CONFIG",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn layers_defaults_file_env_flags_in_that_order() {
        let s = Settings::load_from(None, env(&[]), &[]).unwrap();
        assert_eq!(
            (s.namespace.as_str(), s.redis_url()),
            ("volley", DEFAULT_REDIS_URL)
        );
        let dir = std::env::temp_dir().join(format!("volley-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("volley.toml");
        std::fs::write(
            &file,
            "namespace = \"from-file\"\nredis_url = \"redis://file:6379\"\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&file), env(&[]), &[]).unwrap();
        assert_eq!(
            (s.namespace.as_str(), s.redis_url()),
            ("from-file", "redis://file:6379")
        );
        let vars = [
            ("VOLLEY_NAMESPACE", "from-env"),
            ("VOLLEY_PREFETCH", "4"),
            ("VOLLEY_FAILPOINTS", "x=1"),
        ];
        let s = Settings::load_from(Some(&file), env(&vars), &[]).unwrap();
        assert_eq!(
            (s.namespace.as_str(), s.redis_url()),
            ("from-env", "redis://file:6379")
        );
        let s = Settings::load_from(
            Some(&file),
            env(&vars),
            &[("namespace", Some("from-flag".into()))],
        )
        .unwrap();
        assert_eq!(s.namespace.as_str(), "from-flag");
        let s = Settings::load_from(Some(&file), env(&vars), &[("namespace", None)]).unwrap();
        assert_eq!(
            s.namespace.as_str(),
            "from-env",
            "an absent flag overrides nothing"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_settings_name_their_key_and_never_print_urls() {
        let e =
            Settings::load_from(None, env(&[("VOLLEY_NAMESPACE", "bad ns!")]), &[]).unwrap_err();
        assert!(e.to_string().starts_with("settings: namespace:"), "{e}");
        let e =
            Settings::load_from(None, env(&[("VOLLEY_RETENTION", "forever")]), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "settings: retention: invalid duration 'forever'"
        );
        let s = Settings::load_from(
            None,
            env(&[("VOLLEY_AMQP_URL", "amqp://u:S3CRET@h/%2f")]),
            &[],
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("S3CRET"));
        let e = Settings::load_from(None, env(&[("VOLLEY_DELIVERY_LIMIT", "0")]), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "settings: delivery_limit: must be at least 1"
        );
    }

    #[test]
    fn values_arrive_typed() {
        let vars = [("VOLLEY_RETENTION", "90m"), ("VOLLEY_DELIVERY_LIMIT", "4")];
        let s = Settings::load_from(None, env(&vars), &[]).unwrap();
        assert_eq!(s.retention, Duration::from_secs(90 * 60));
        assert_eq!(s.delivery_limit, 4);
        let s = Settings::load_from(None, env(&[]), &[]).unwrap();
        assert_eq!(s.retention, Duration::from_secs(7 * 24 * 3600));
        assert_eq!((s.delivery_limit, s.namespace.as_str()), (20, "volley"));
    }
}
