//! `volley migrate` and the schema check of the producer and the workers: a new namespace is
//! migrated by its first job; one made before migrations (a running job on it) is upgraded
//! without losing or repeating a record; two runs at once apply once; a newer schema or an
//! edited migration is refused with what to do.

use std::time::Duration;
use volley_tests::support::{describe, finish_ok, wait_for_job};
use volley_tests::{TestEnv, write_jsonl};

async fn redis_query<T: redis::FromRedisValue>(
    env: &TestEnv,
    cmd: &mut redis::Cmd,
) -> anyhow::Result<T> {
    let client = redis::Client::open(env.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    Ok(cmd.query_async(&mut conn).await?)
}

fn schema_key(env: &TestEnv) -> String {
    format!("{}:schema", env.ns)
}

async fn schema_version(env: &TestEnv) -> anyhow::Result<Option<String>> {
    redis_query(env, redis::cmd("HGET").arg(schema_key(env)).arg("version")).await
}

/// What a namespace made by Volley before migrations looks like: its topology and its jobs,
/// no schema record.
async fn forget_schema(env: &TestEnv) -> anyhow::Result<()> {
    redis_query::<i64>(env, redis::cmd("DEL").arg(schema_key(env))).await?;
    Ok(())
}

#[tokio::test]
async fn a_new_namespace_is_migrated_by_its_first_job_and_migrate_then_has_nothing_to_do()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    assert_eq!(schema_version(&env).await?, None);
    let dry = env
        .run("volley", &["migrate", "--dry-run", "--json"])
        .await?;
    assert!(dry.status.success(), "{}", describe(&dry));
    let plan: serde_json::Value = serde_json::from_slice(&dry.stdout)?;
    assert_eq!(
        (plan["from"].as_u64(), plan["to"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(plan["migrations"][0]["file"], "0001_namespace.toml");
    assert_eq!(
        schema_version(&env).await?,
        None,
        "a dry run records nothing"
    );

    let input = env.path("records.jsonl");
    write_jsonl(&input, 200)?;
    let spec = env.write_spec("fresh", "/users/{id}", "[result]\nbody = \"none\"\n")?;
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "3s"])?;
    let job = env.produce(&spec, &input, &[]).await?;
    assert_eq!(schema_version(&env).await?.as_deref(), Some("1"));
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.u64("ok"), 200);
    finish_ok(&mut worker, Duration::from_secs(30)).await?;

    let again = env.run("volley", &["migrate"]).await?;
    assert!(again.status.success(), "{}", describe(&again));
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.contains("is at schema 1: nothing to do"), "{said}");
    Ok(())
}

#[tokio::test]
async fn a_namespace_made_before_migrations_is_upgraded_under_a_running_job_losing_nothing()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 2_000)?;
    let spec = env.write_spec(
        "legacy",
        "/users/{id}?delay_ms=20",
        "[result]\nbody = \"none\"\n[chunking]\nsize = 50\n[concurrency]\nper_worker = 16\n",
    )?;
    let mut old = env.spawn_worker("old", &["--exit-when-idle", "3s"])?;
    let job = env.produce(&spec, &input, &[]).await?;
    // The namespace as today's code left it, with a worker that started before the upgrade
    // still running its job.
    forget_schema(&env).await?;

    // A worker of the new version refuses it, naming the command.
    let refused = env
        .run("volley-worker", &["--exit-when-idle", "1s"])
        .await?;
    assert_eq!(refused.status.code(), Some(78), "{}", describe(&refused));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains(
            "(made before migrations), but this volley-worker needs 1: run `volley migrate`"
        ),
        "{why}"
    );
    // So does a producer of the new version, before it registers or publishes anything.
    let other = env.path("other.jsonl");
    write_jsonl(&other, 10)?;
    let producer = env
        .run(
            "volley-producer",
            &[
                "--spec",
                volley_tests::path_str(&spec)?,
                "--input",
                volley_tests::path_str(&other)?,
            ],
        )
        .await?;
    assert_eq!(producer.status.code(), Some(78), "{}", describe(&producer));

    let dry = env.run("volley", &["migrate", "--dry-run"]).await?;
    assert!(dry.status.success(), "{}", describe(&dry));
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(plan.contains("would apply 0001_namespace.toml"), "{plan}");
    assert!(
        plan.contains(&format!(
            "declare queue {}.dead (durable, x-queue-type=quorum)",
            env.ns
        )),
        "{plan}"
    );
    assert_eq!(
        schema_version(&env).await?,
        None,
        "a dry run records nothing"
    );

    let migrated = env.run("volley", &["migrate"]).await?;
    assert!(migrated.status.success(), "{}", describe(&migrated));
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("schema 0 -> 1"));
    assert_eq!(schema_version(&env).await?.as_deref(), Some("1"));

    // A new worker joins the old one; the job ends with every record called once.
    let mut new = env.spawn_worker("new", &["--exit-when-idle", "3s"])?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.code, 0, "{}", fin.json);
    assert_eq!((fin.u64("done"), fin.u64("ok")), (2_000, 2_000));
    assert_eq!(env.mock.stats().requests, 2_000, "no record called twice");
    let verified = env.run("volley", &["verify", &job]).await?;
    assert!(verified.status.success(), "{}", describe(&verified));
    finish_ok(&mut old, Duration::from_secs(30)).await?;
    finish_ok(&mut new, Duration::from_secs(30)).await?;
    Ok(())
}

#[tokio::test]
async fn two_migrations_at_once_apply_each_step_once() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    // A namespace with data and no schema: both runs have something to do.
    redis_query::<()>(
        &env,
        redis::cmd("SET").arg(format!("{}:since", env.ns)).arg(1),
    )
    .await?;
    let (a, b) = tokio::join!(
        env.run("volley", &["migrate"]),
        env.run("volley", &["migrate"])
    );
    let (a, b) = (a?, b?);
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        describe(&a),
        describe(&b)
    );
    let said = [a, b].map(|o| String::from_utf8_lossy(&o.stdout).to_string());
    let applied = said
        .iter()
        .filter(|s| s.contains("applied 0001_namespace.toml"))
        .count();
    let idle = said.iter().filter(|s| s.contains("nothing to do")).count();
    assert_eq!((applied, idle), (1, 1), "{said:?}");
    let mut fields: Vec<String> =
        redis_query(&env, redis::cmd("HKEYS").arg(schema_key(&env))).await?;
    fields.sort();
    assert_eq!(
        fields,
        ["m1", "version"],
        "the lock is given up, the step recorded once"
    );
    Ok(())
}

#[tokio::test]
async fn a_newer_schema_or_an_edited_migration_is_refused_with_what_to_do() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let migrated = env.run("volley", &["migrate"]).await?;
    assert!(migrated.status.success(), "{}", describe(&migrated));

    let key = schema_key(&env);
    let applied: String = redis_query(&env, redis::cmd("HGET").arg(&key).arg("m1")).await?;
    let edited = applied.replacen("\"checksum\":\"", "\"checksum\":\"0", 1);
    redis_query::<()>(&env, redis::cmd("HSET").arg(&key).arg("m1").arg(&edited)).await?;
    let out = env.run("volley", &["migrate"]).await?;
    assert_eq!(out.status.code(), Some(78), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("migration 0001 changed since it was applied"),
        "{}",
        describe(&out)
    );

    redis_query::<()>(&env, redis::cmd("HSET").arg(&key).arg("version").arg(9)).await?;
    for (binary, args) in [
        ("volley", vec!["migrate"]),
        ("volley-worker", vec!["--exit-when-idle", "1s"]),
    ] {
        let out = env.run(binary, &args).await?;
        assert_eq!(out.status.code(), Some(78), "{}", describe(&out));
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(
            why.contains("has schema 9, newer than this"),
            "{binary}: {why}"
        );
    }
    Ok(())
}
