use crate::bins::bin;
use std::path::{Path, PathBuf};
use std::process::Output;
use tokio::process::{Child, Command};
use volley_amqp::{AmqpBroker, AmqpOptions};
use volley_cli::commands::namespace::delete_namespace;
use volley_core::Namespace;
use volley_mockapi::{MockConfig, MockServer};
use volley_redis::RedisStore;
use volley_runtime::Settings;
use volley_runtime::settings::{DEFAULT_AMQP_URL, DEFAULT_REDIS_URL};

/// One test's world: namespace, mock API, scratch directory.
pub struct TestEnv {
    pub ns: Namespace,
    pub mock: MockServer,
    pub dir: PathBuf,
    pub amqp_url: String,
    pub redis_url: String,
    /// More environment for every child process (`VOLLEY_DELIVERY_LIMIT`, …).
    pub extra_env: Vec<(String, String)>,
}

impl TestEnv {
    pub async fn new() -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let ns = Namespace::parse(&format!("t-{}", &id[..12])).map_err(anyhow::Error::msg)?;
        let mock = MockServer::start(
            "127.0.0.1:0",
            MockConfig {
                track_ids: true,
                track_times: true,
            },
        )
        .await?;
        let dir = std::env::temp_dir().join(format!("volley-{ns}"));
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            ns,
            mock,
            dir,
            amqp_url: std::env::var("VOLLEY_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into()),
            redis_url: std::env::var("VOLLEY_REDIS_URL")
                .unwrap_or_else(|_| DEFAULT_REDIS_URL.into()),
            extra_env: Vec::new(),
        })
    }

    /// Points the env (and every child process) at other servers, e.g. private ones.
    pub fn with_servers(mut self, amqp_url: Option<String>, redis_url: Option<String>) -> Self {
        if let Some(url) = amqp_url {
            self.amqp_url = url;
        }
        if let Some(url) = redis_url {
            self.redis_url = url;
        }
        self
    }

    /// Environment for child processes.
    pub fn envs(&self) -> Vec<(String, String)> {
        vec![
            ("VOLLEY_NAMESPACE".into(), self.ns.to_string()),
            ("VOLLEY_AMQP_URL".into(), self.amqp_url.clone()),
            ("VOLLEY_REDIS_URL".into(), self.redis_url.clone()),
            ("RUST_LOG".into(), "info".into()),
        ]
        .into_iter()
        .chain(self.extra_env.iter().cloned())
        .collect()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The settings a child process of this env loads: this process's environment, then
    /// [`TestEnv::envs`] on top, through the same layering the binaries use.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let env = std::env::vars().chain(self.envs());
        Ok(Settings::load_from(None, env, &[])?)
    }

    /// The env's store, built from [`TestEnv::settings`] as the binaries build theirs.
    pub fn store(&self) -> anyhow::Result<RedisStore> {
        Ok(RedisStore::from_settings(&self.settings()?)?)
    }

    /// The env's broker (its delivery limit too), built from [`TestEnv::settings`] as the
    /// binaries build theirs.
    pub fn broker(&self) -> anyhow::Result<AmqpBroker> {
        Ok(AmqpBroker::new(AmqpOptions::from_settings(
            &self.settings()?,
            "volley",
        )))
    }

    /// Writes a spec calling the mock API; `extra` is appended verbatim.
    pub fn write_spec(&self, name: &str, url_path: &str, extra: &str) -> anyhow::Result<PathBuf> {
        let text = format!(
            "name = \"{name}\"\n{extra}\n[request]\nurl = \"{}{url_path}\"\ntimeout = \"5s\"\n",
            self.mock.base_url()
        );
        let path = self.path(&format!("{name}.toml"));
        std::fs::write(&path, text)?;
        Ok(path)
    }

    pub fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(bin(name));
        cmd.envs(self.envs()).kill_on_drop(true);
        cmd
    }

    pub async fn run(&self, name: &str, args: &[&str]) -> anyhow::Result<Output> {
        Ok(self.command(name).args(args).output().await?)
    }

    /// Runs a job embedded: `volley run --spec S --input I --out O [extra…]`.
    pub async fn run_embedded(
        &self,
        spec: &Path,
        input: &Path,
        out: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Output> {
        let mut args = vec![
            "run",
            "--spec",
            path_str(spec)?,
            "--input",
            path_str(input)?,
            "--out",
            path_str(out)?,
        ];
        args.extend_from_slice(extra);
        self.run("volley", &args).await
    }

    /// Starts a worker process logging to a file in the scratch directory.
    pub fn spawn_worker(&self, label: &str, args: &[&str]) -> anyhow::Result<Child> {
        let log = std::fs::File::create(self.path(&format!("{label}.log")))?;
        Ok(self
            .command("volley-worker")
            .args(["--worker-id", label])
            .args(args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?)
    }

    /// Runs the producer; returns the job id it printed.
    pub async fn produce(
        &self,
        spec: &Path,
        input: &Path,
        extra: &[&str],
    ) -> anyhow::Result<String> {
        let mut args = vec!["--spec", path_str(spec)?, "--input", path_str(input)?];
        args.extend_from_slice(extra);
        let out = self.run("volley-producer", &args).await?;
        anyhow::ensure!(
            out.status.success(),
            "producer failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    /// The queue counts summed over every job of the namespace (each job has a queue of its
    /// own), with the dead letters.
    pub async fn queue_counts(&self) -> anyhow::Result<volley_amqp::QueueCounts> {
        let jobs = self.store()?.job_ids().await?;
        Ok(self.broker()?.queue_counts(&jobs).await?)
    }

    /// Deletes the namespace's queues, exchange and keys, with the code of `volley namespace
    /// delete`.
    pub async fn cleanup(&self) -> anyhow::Result<()> {
        let deleted = delete_namespace(&self.broker()?, &self.store()?).await;
        let _ = std::fs::remove_dir_all(&self.dir);
        deleted.map(drop).map_err(anyhow::Error::from)
    }
}

pub fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path"))
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Runs even when the test panicked, so a failing test leaves nothing behind (unless
        // VOLLEY_KEEP_TEST_DIRS is set, to read the logs of a failure).
        if std::env::var_os("VOLLEY_KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {} (namespace {})", self.dir.display(), self.ns);
            return;
        }
        let broker = self.broker().ok();
        let store = self.store().ok();
        let dir = self.dir.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            if let (Some(broker), Some(store)) = (broker, store) {
                let _ = rt.block_on(delete_namespace(&broker, &store));
            }
            let _ = std::fs::remove_dir_all(dir);
        })
        .join();
    }
}
