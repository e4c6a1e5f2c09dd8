use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;

/// The test command's build of the binaries: with failpoints, which the fault tests arm.
const BUILD: &str = "cargo build --workspace --bins --features volley-core/failpoints";

/// The binaries that read `VOLLEY_FAILPOINTS` (the mock API does not).
const WITH_FAILPOINTS: &[&str] = &["volley", "volley-producer", "volley-worker"];

/// The path of a workspace binary. The test command builds them before running tests
/// (`BUILD`); they sit beside the test executable's `deps` folder. A binary that takes
/// failpoints must have them compiled in: one built without the feature would ignore the
/// tests' `VOLLEY_FAILPOINTS` and fail them far from the cause, so that stops here instead.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first ({BUILD})",
        path.display()
    );
    if WITH_FAILPOINTS.contains(&name) {
        assert_failpoints_compiled(&path);
    }
    path
}

/// Asks the binary once per test process: without failpoints it warns at start that
/// `VOLLEY_FAILPOINTS` is ignored (`--version` gets that far and no further).
fn assert_failpoints_compiled(path: &Path) {
    static CHECKED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    let mut checked = CHECKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if checked.contains(path) {
        return;
    }
    let output = std::process::Command::new(path)
        .arg("--version")
        .env("VOLLEY_FAILPOINTS", "probe=1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains(volley_core::failpoint::IGNORED_WARNING),
        "{} was built without failpoints, which the tests arm: build it with {BUILD}",
        path.display()
    );
    checked.insert(path.to_path_buf());
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
