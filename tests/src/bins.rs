use std::path::PathBuf;
use std::process::Output;

/// The path of a workspace binary. The test command builds them before running tests
/// (`cargo build --bins`); they sit beside the test executable's `deps` folder.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --bins)",
        path.display()
    );
    path
}

/// Runs a binary to completion with the env's variables.
pub async fn run_bin(
    name: &str,
    args: &[&str],
    envs: &[(String, String)],
) -> anyhow::Result<Output> {
    let output = tokio::process::Command::new(bin(name))
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .kill_on_drop(true)
        .output()
        .await?;
    Ok(output)
}
