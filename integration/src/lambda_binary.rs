//! The one Lambda binary (`edgecert-lambda`, crate `functions/lambda`) that every function of
//! template.yaml runs, found (or built) for the tests that start it as Lambda would.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The one Lambda binary (`edgecert-lambda`, crate functions/lambda), as fresh as this test.
///
/// Cargo sets `CARGO_BIN_EXE_<name>` only for the binaries of the package under test, and the
/// binary's package depends on the API's and the workers', so it cannot be a dependency of
/// their tests. Cargo puts
/// it next to this package's test executables' profile directory, though: it is used from there
/// when Cargo built it after the last change to any of its sources (its `.d` file lists every
/// source file, which is what Cargo's own freshness check reads), as `cargo test --workspace`
/// does before it runs any test. Otherwise (`cargo test -p edgecert-api` after a change) it is
/// built now, into the same target directory and profile; Cargo released its lock once the test
/// build was done.
pub fn lambda_binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| {
            let test_executable = std::env::current_exe().expect("the test's own path");
            // <target>/<profile>/deps/<this test>
            let profile_dir = test_executable
                .parent()
                .and_then(Path::parent)
                .expect("tests live in <profile>/deps");
            let built = profile_dir.join(LAMBDA_BINARY);
            if is_fresh(&built) {
                return built;
            }
            eprintln!("building the Lambda binary (cargo build -p edgecert-lambda --bins)");
            build_lambda_binary(profile_dir)
        })
        .clone()
}

/// The binary's name (functions/lambda/Cargo.toml).
const LAMBDA_BINARY: &str = "edgecert-lambda";

/// Whether `binary` exists and is newer than every file its Cargo dep-info (`<binary>.d`)
/// lists, and than `Cargo.lock`.
fn is_fresh(binary: &Path) -> bool {
    let modified = |path: &Path| path.metadata().and_then(|meta| meta.modified()).ok();
    let Some(built_at) = modified(binary) else {
        return false;
    };
    let Ok(dep_info) = std::fs::read_to_string(binary.with_extension("d")) else {
        return false;
    };
    // `<target>: <source> <source> ...`, spaces inside paths escaped as `\ `.
    let Some((_, sources)) = dep_info.split_once(": ") else {
        return false;
    };
    let sources = sources.replace("\\ ", "\u{0}");
    let lock = crate::workspace_root().join("Cargo.lock");
    sources
        .split_whitespace()
        .map(|source| PathBuf::from(source.replace('\u{0}', " ")))
        .chain(std::iter::once(lock))
        .all(|source| modified(&source).is_some_and(|changed| changed <= built_at))
}

/// Builds the binary with Cargo into the target directory and profile of `profile_dir`, and
/// returns its path as Cargo reports it.
fn build_lambda_binary(profile_dir: &Path) -> PathBuf {
    let target_dir = profile_dir.parent().expect("a target directory");
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(crate::workspace_root())
        .args(["build", "--quiet", "--message-format=json", "--bins"])
        .args(["-p", "edgecert-lambda", "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo build -p edgecert-lambda --bins failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|message| message["message"]["rendered"].as_str().map(str::to_owned))
            .collect::<String>()
    );
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|message| message["target"]["name"] == LAMBDA_BINARY)
        .and_then(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo built the Lambda binary")
}
