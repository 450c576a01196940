//! Kill -9 at every step of the batch protocol, restart, and check that the committed output
//! is exactly a clean run's: no row lost, none duplicated.
//!
//! The process is stopped at exact places with failpoints (see `sluice::failpoint`): it
//! announces the point on stderr and parks; the test then sends a real SIGKILL.

mod common;

use std::path::Path;

use common::*;

const FILES: u64 = 6;
const ROWS_PER_FILE: u64 = 50;

fn setup(d: &Path) -> std::path::PathBuf {
    for i in 0..FILES {
        let f = drop_file(
            &d.join("in"),
            &format!("f{i}.json"),
            &event_lines(i * ROWS_PER_FILE..(i + 1) * ROWS_PER_FILE),
        );
        // Distinct modification times fix the order files are picked in.
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(100 - i);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    pipeline(
        d,
        r#"[[query]]
name = "copy"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in/*.json"
schema = "id BIGINT, city STRING, amount BIGINT"
maxFilesPerTrigger = 1

[query.sink]
format = "json"
path = "out"
partitionBy = ["city"]
"#,
    )
}

/// Every committed row, as sorted JSON text (order across files is not part of the contract).
fn committed_rows(d: &Path) -> Vec<String> {
    let mut rows: Vec<String> = committed_json(&d.join("out"))
        .into_iter()
        .map(|r| r.to_string())
        .collect();
    rows.sort();
    rows
}

fn clean_run() -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = setup(dir.path());
    let out = sluice().arg("run").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    committed_rows(dir.path())
}

#[test]
fn kill_minus_nine_anywhere_then_restart_gives_the_clean_output() {
    let expected = clean_run();
    assert_eq!(expected.len() as u64, FILES * ROWS_PER_FILE);

    let points = [
        "before-offsets",
        "after-offsets",
        "mid-sink",
        "after-sink",
        "after-commit",
    ];
    let mut killed_at = 0;
    for batch in 0..5u64 {
        for point in points {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let file = setup(d);
            let failpoint = format!("{point}:{batch}");
            let mut run = Running::start(&file, &[], &[("SLUICE_FAILPOINTS", &failpoint)]);
            run.await_line(&format!("sluice-failpoint: {point} batch {batch}"));
            run.signal(9);
            let (code, _) = run.wait();
            assert_eq!(code, None, "{failpoint}: the process was not killed");
            killed_at += 1;

            // What a reader sees right after the crash is a prefix of the clean output.
            let partial = committed_rows(d);
            assert!(
                partial.iter().all(|r| expected.binary_search(r).is_ok()),
                "{failpoint}: a row that a clean run never writes"
            );

            let out = sluice()
                .arg("run")
                .arg(&file)
                .env("RUST_LOG", "info")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{failpoint}: restart failed:\n{stderr}"
            );
            if matches!(point, "after-offsets" | "mid-sink" | "after-sink") {
                assert!(
                    stderr.contains("re-running the last batch"),
                    "{failpoint}: batch not re-run:\n{stderr}"
                );
            }
            assert_eq!(
                committed_rows(d),
                expected,
                "{failpoint}: output differs from a clean run"
            );
        }
    }
    assert!(killed_at >= 20);
}
