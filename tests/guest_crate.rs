//! A newcomer's path to their own guest, outside this repository: `sluice new` → build →
//! check → validate → run the generated pipeline → its output checked.
//!
//! The crates are written to a temporary directory (not under the repository), so nothing
//! in them can reach the repository's SDK by a relative path. Only the compiled dependencies
//! are shared with the example guests' target directory, as a cache.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{committed_json, last_console_table, repo, run_ok, sluice};

/// The cargo target directory the guests are built in (shared with scripts/build-guests.sh).
fn guest_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
        .join("guests")
}

/// `sluice new KIND NAME` in `parent`; returns the crate's directory.
fn new_crate(parent: &Path, kind: &str, name: &str) -> PathBuf {
    let out = run_ok(sluice().args(["new", kind, name]).current_dir(parent));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("sluice module build"), "{stdout}");
    let dir = parent.join(name);
    assert!(dir.join("Cargo.toml").exists());
    assert!(
        !std::fs::read_to_string(dir.join("Cargo.toml"))
            .unwrap()
            .contains(&repo().display().to_string()),
        "the crate must not point into the repository"
    );
    dir
}

/// `sluice module build` in the crate; returns its stdout.
fn module_build(dir: &Path) -> String {
    let out = run_ok(
        sluice()
            .args(["module", "build"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", guest_target_dir()),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_pipeline(dir: &Path) -> String {
    run_ok(
        sluice()
            .args(["validate", "pipeline.toml"])
            .current_dir(dir),
    );
    let out = run_ok(sluice().args(["run", "pipeline.toml"]).current_dir(dir));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sample orders every scaffold ships: (user, category, amount).
fn sample(dir: &Path) -> Vec<(String, String, i64)> {
    std::fs::read_to_string(dir.join("input/orders.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["user"].as_str().unwrap().to_owned(),
                v["category"].as_str().unwrap().to_owned(),
                v["amount"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_new_transform_builds_outside_the_repository_and_runs_its_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(!tmp.path().starts_with(repo()));
    let dir = new_crate(tmp.path(), "transform", "big-orders");

    // A plain cargo build, as the README of the crate says, makes a component that passes the
    // upload checks.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_ok(
        Command::new(cargo)
            .args(["build", "--target", "wasm32-wasip2", "--release"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", guest_target_dir()),
    );
    let built = guest_target_dir().join("wasm32-wasip2/release/big_orders.wasm");
    let out = run_ok(sluice().args(["module", "check"]).arg(&built));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok, implements sluice:pipeline/transformer"),
        "{stdout}"
    );

    let stdout = module_build(&dir);
    assert!(stdout.contains("wrote "), "{stdout}");
    assert!(dir.join("big_orders.wasm").exists());
    run_pipeline(&dir);

    let mut rows: Vec<(String, i64)> = committed_json(&dir.join("out/orders"))
        .iter()
        .map(|r| {
            (
                r["user"].as_str().unwrap().to_owned(),
                r["amount"].as_i64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    let mut expected: Vec<(String, i64)> = sample(&dir)
        .into_iter()
        .filter(|(_, _, a)| *a >= 100)
        .map(|(u, _, a)| (u.to_uppercase(), a))
        .collect();
    expected.sort();
    assert!(!expected.is_empty());
    assert_eq!(rows, expected);
}

#[test]
fn a_new_handler_builds_and_writes_its_output_and_summaries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_crate(tmp.path(), "handler", "audit");
    module_build(&dir);
    run_pipeline(&dir);

    let copied = committed_json(&dir.join("out/copy"));
    assert_eq!(copied.len(), sample(&dir).len());
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("out/handler/summaries/batch-0.json")).unwrap(),
    )
    .unwrap();
    let total: i64 = sample(&dir).iter().map(|(_, _, a)| a).sum();
    assert_eq!(summary["rows"], sample(&dir).len());
    assert_eq!(summary["amount"], total);
}

#[test]
fn a_new_aggregate_builds_and_computes_its_result_per_group() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_crate(tmp.path(), "aggregate", "spread");
    module_build(&dir);
    let stdout = run_pipeline(&dir);

    let mut got: Vec<(String, String, String)> = last_console_table(&stdout)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    got.sort();
    let mut by_category: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for (_, c, a) in sample(&dir) {
        by_category.entry(c).or_default().push(a);
    }
    let expected: Vec<(String, String, String)> = by_category
        .into_iter()
        .map(|(c, v)| {
            let spread = v.iter().max().unwrap() - v.iter().min().unwrap();
            (c, spread.to_string(), v.len().to_string())
        })
        .collect();
    assert_eq!(got, expected, "{stdout}");
}

#[test]
fn a_new_function_builds_and_is_called_from_a_select_expression() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_crate(tmp.path(), "function", "tax");
    let built = module_build(&dir);
    assert!(
        built.contains("function"),
        "module build names the world: {built}"
    );
    let stdout = run_pipeline(&dir);
    let mut got: Vec<(String, String, String)> = last_console_table(&stdout)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    got.sort();
    let mut expected: Vec<(String, String, String)> = sample(&dir)
        .into_iter()
        .map(|(u, _, a)| (u, a.to_string(), ((a * 110 + 50) / 100).to_string()))
        .collect();
    expected.sort();
    assert_eq!(got, expected, "{stdout}");
}

#[test]
fn a_new_processor_builds_and_keeps_totals_per_user() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_crate(tmp.path(), "processor", "totals");
    module_build(&dir);
    let stdout = run_pipeline(&dir);
    let mut got: Vec<(String, String, String)> = last_console_table(&stdout)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    got.sort();
    let mut by_user: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for (u, _, a) in sample(&dir) {
        let e = by_user.entry(u).or_default();
        e.0 += 1;
        e.1 += a;
    }
    let expected: Vec<(String, String, String)> = by_user
        .into_iter()
        .map(|(u, (n, t))| (u, n.to_string(), t.to_string()))
        .collect();
    assert_eq!(got, expected, "{stdout}");
    // The totals are in the checkpoint, readable without the module.
    let out = run_ok(
        sluice()
            .args(["state", "show", "out/checkpoints"])
            .current_dir(&dir),
    );
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(lines, expected.len());
}

#[test]
fn a_scaffold_never_overwrites_and_refuses_bad_names() {
    let tmp = tempfile::tempdir().unwrap();
    new_crate(tmp.path(), "transform", "mine");
    let out = sluice()
        .args(["new", "transform", "mine"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mine already exists"));

    let out = sluice()
        .args(["new", "handler", "../escape"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot name a guest crate"));
}

#[test]
fn module_check_refuses_what_an_upload_would() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("junk.wasm");
    std::fs::write(&file, b"not a component").unwrap();
    let out = sluice()
        .args(["module", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("junk.wasm"), "{stderr}");
}
