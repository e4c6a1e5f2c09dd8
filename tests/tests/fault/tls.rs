//! TLS to RabbitMQ and Redis (SEC-4), slow (it starts TLS servers): `amqps://` and
//! `rediss://` work when the CA is given through `SSL_CERT_FILE`, and a server whose
//! certificate the CA did not sign is refused with a clear error. Ignored in a default run (reported as skipped); runs with VOLLEY_SLOW=1.

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use volley_tests::private::{PrivateBroker, PrivateRedis, free_port};
use volley_tests::support::{describe, wait_exit};
use volley_tests::{TestEnv, write_jsonl};

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "openssl {args:?} failed");
    Ok(())
}

/// A CA and a server certificate for localhost / 127.0.0.1, readable by the rabbitmq user.
fn certificates(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=volley-test-ca",
        ],
    )?;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-days",
            "2",
            "-subj",
            "/CN=someone-else",
        ],
    )?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    )?;
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    )?;
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir)
        .status()?;
    Ok(())
}

#[tokio::test]
#[ignore = "slow: runs with VOLLEY_SLOW=1"]
async fn amqps_and_rediss_work_with_the_ca_and_refuse_without_it() -> anyhow::Result<()> {
    let _serial = crate::serial().await;
    let certs = std::env::temp_dir().join(format!("volley-tls-{}", std::process::id()));
    certificates(&certs)?;
    let path = |f: &str| certs.join(f).to_string_lossy().into_owned();
    let tls_port = free_port()?;
    let pr = PrivateRedis::start(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &path("server.pem"),
        "--tls-key-file",
        &path("server.key"),
        "--tls-ca-cert-file",
        &path("ca.pem"),
        "--tls-auth-clients",
        "no",
    ])?;
    let amqps_port = free_port()?;
    let pb = PrivateBroker::start(&format!(
        "listeners.ssl.default = {amqps_port}\nssl_options.cacertfile = {}\n\
         ssl_options.certfile = {}\nssl_options.keyfile = {}\nssl_options.verify = verify_none\n\
         ssl_options.fail_if_no_peer_cert = false\nloopback_users = none\n",
        path("ca.pem"),
        path("server.pem"),
        path("server.key")
    ))?;
    let amqps = format!("amqps://guest:guest@localhost:{amqps_port}/%2f");
    let rediss = format!("rediss://localhost:{tls_port}");
    let mut env = TestEnv::new()
        .await?
        .with_servers(Some(amqps.clone()), Some(rediss.clone()));
    // Without the CA: refused, naming the certificate problem.
    let spec = env.write_spec("tls", "/users/{id}", "[result]\nbody = \"none\"\n")?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 500)?;
    let spec_s = spec.to_str().unwrap_or_default().to_string();
    let input_s = input.to_str().unwrap_or_default().to_string();
    let out = env
        .command("volley-producer")
        .args(["--spec", &spec_s, "--input", &input_s])
        .env("SSL_CERT_FILE", path("other.pem"))
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(69), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        text.contains("invalid peer certificate: unknownissuer"),
        "{text}"
    );
    // With it: the whole job runs over TLS.
    env.extra_env.push(("SSL_CERT_FILE".into(), path("ca.pem")));
    let job = env.produce(&spec, &input, &[]).await?;
    let mut worker = env.spawn_worker("w", &["--exit-when-idle", "3s"])?;
    // The oracle's broker check runs in this process, which has no CA configured: check
    // through the binaries instead.
    let fin = volley_tests::support::wait_for_job(&env, &job).await?;
    assert_eq!((fin.code, fin.u64("ok")), (0, 500), "{}", fin.json);
    let results =
        volley_tests::check_results(&volley_tests::support::export(&env, &job, &[]).await?, &ids)?;
    // The refused worker above never reached the queue: the API saw each record once.
    crate::oracle::check_api_bound(&results, &env.mock.stats(), crate::oracle::ApiBound::Exact)?;
    assert!(
        wait_exit(&mut worker, Duration::from_secs(30))
            .await?
            .success()
    );
    drop(pb);
    drop(pr);
    let _ = std::fs::remove_dir_all(&certs);
    Ok(())
}
