//! Private servers for the fault suite: a Redis and a RabbitMQ node of the test's own, on
//! free ports, that a test may stop, restart, pause or fill without touching the machine's
//! shared services. Dropping one stops it and deletes its files.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn scratch(kind: &str, port: u16) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("volley-{kind}-{port}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A blocking wait, not [`crate::eventually`]: the private servers' `start`, `restart` and
/// `kill_node` are synchronous (run a process, wait for its port), called without `.await`.
fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("{what} not ready within {within:?}")
}

/// A `redis-server` of the test's own, with AOF (`appendfsync everysec`) unless told
/// otherwise.
pub struct PrivateRedis {
    pub port: u16,
    pub dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one; `extra` are more `redis-server` arguments (`--maxmemory`, `2mb`, …).
    pub fn start(extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_on(free_port()?, extra)
    }

    /// Starts one on `port` (a port a client was already pointed at, see [`free_port`]).
    pub fn start_on(port: u16, extra: &[&str]) -> anyhow::Result<Self> {
        let dir = scratch("redis", port)?;
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            dir.to_str().unwrap_or("."),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut redis = Self {
            port,
            dir,
            args,
            child: None,
        };
        redis.restart()?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port and directory (after [`Self::kill`]).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir.join("redis.log"))?;
        self.child = Some(
            Command::new("redis-server")
                .args(&self.args)
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?,
        );
        let port = self.port;
        wait_until("private Redis", Duration::from_secs(20), || {
            redis_cli(port, &["PING"]).is_ok_and(|o| o.stdout.starts_with(b"PONG"))
        })
    }

    /// `kill -9`: whatever was not yet written to the AOF is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `redis-cli` against it.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<Output> {
        redis_cli(self.port, args)
    }

    /// The process id (for `kill -STOP`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

fn redis_cli(port: u16, args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()?)
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A RabbitMQ node of the test's own (`volleyfault-<port>@localhost`). Starting one takes a
/// few seconds, so tests that need one run in the serial fault group.
pub struct PrivateBroker {
    pub port: u16,
    pub node: String,
    pub dir: PathBuf,
    dist_port: u16,
}

impl PrivateBroker {
    /// Starts a node; `conf` is added to its `rabbitmq.conf` (e.g. `consumer_timeout = 60000`).
    pub fn start(conf: &str) -> anyhow::Result<Self> {
        let port = free_port()?;
        let dist_port = free_port()?;
        let dir = scratch("rabbit", port)?;
        std::fs::create_dir_all(dir.join("mnesia"))?;
        std::fs::create_dir_all(dir.join("log"))?;
        std::fs::write(dir.join("enabled_plugins"), "[].\n")?;
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = {port}\n{conf}\n"),
        )?;
        // The server script drops to the rabbitmq user, which must own the node's files.
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&dir)
            .status();
        let node = format!("volleyfault-{port}@localhost");
        let broker = Self {
            port,
            node,
            dir,
            dist_port,
        };
        broker.launch()?;
        Ok(broker)
    }

    /// Starts the node's Erlang VM on its directory and waits until it accepts connections.
    fn launch(&self) -> anyhow::Result<()> {
        let path = |p: &str| self.dir.join(p).to_string_lossy().into_owned();
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
            .env("RABBITMQ_LOG_BASE", path("log"))
            .env("RABBITMQ_CONFIG_FILE", path("rabbitmq"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        anyhow::ensure!(
            status.success(),
            "rabbitmq-server -detached failed: {status}"
        );
        self.wait_ready(Duration::from_secs(90))
    }

    /// `kill -9` of the node's Erlang VM: no clean shutdown, only what was fsynced survives.
    pub fn kill_node(&self) -> anyhow::Result<()> {
        let out = self.ctl(&["eval", "os:getpid()."])?;
        let pid: String = String::from_utf8_lossy(&out.stdout)
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        anyhow::ensure!(!pid.is_empty(), "no pid for {}: {out:?}", self.node);
        let status = Command::new("kill").args(["-9", &pid]).status()?;
        anyhow::ensure!(status.success(), "kill -9 {pid} failed");
        let port = self.port;
        wait_until("private RabbitMQ gone", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        })
    }

    /// Starts the node again after [`Self::kill_node`], on the same data.
    pub fn restart_node(&self) -> anyhow::Result<()> {
        self.launch()
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Runs `rabbitmqctl` against the node.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<Output> {
        Ok(Command::new("rabbitmqctl")
            .args(["-n", &self.node])
            .args(args)
            .stdin(Stdio::null())
            .output()?)
    }

    fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let port = self.port;
        wait_until("private RabbitMQ", within, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && self
                    .ctl(&["await_startup", "--timeout", "5"])
                    .is_ok_and(|o| o.status.success())
        })
    }

    /// Stops the broker application (connections drop, the port closes); the node stays.
    pub fn stop_app(&self) -> anyhow::Result<()> {
        let out = self.ctl(&["stop_app"])?;
        anyhow::ensure!(out.status.success(), "stop_app: {out:?}");
        Ok(())
    }

    /// Starts the application again and waits until it accepts connections.
    pub fn start_app(&self) -> anyhow::Result<()> {
        let out = self.ctl(&["start_app"])?;
        anyhow::ensure!(out.status.success(), "start_app: {out:?}");
        self.wait_ready(Duration::from_secs(60))
    }

    /// Closes every client connection (CONNECTION_FORCED).
    pub fn close_all_connections(&self) -> anyhow::Result<()> {
        self.ctl(&["close_all_connections", "volley fault test"])?;
        Ok(())
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl PrivateBroker {
    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_dir(self.dir.join("log"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}
