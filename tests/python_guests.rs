//! Guests written in Python (componentize-py, `guest-sdk/python`): built from source by
//! `scripts/build-python-guests.sh`, run through the CLI like Rust guests, with the same
//! output as the Rust examples and the same containment for hostile code.

mod common;

use common::*;

#[test]
fn a_python_transform_built_with_componentize_py_filters_rows_in_a_pipeline() {
    let module = python_guests().join("python_filter.wasm");
    let dir = tempfile::tempdir().unwrap();
    drop_file(&dir.path().join("in"), "a.json", event_lines(0..300));
    let file = pipeline(
        dir.path(),
        &format!(
            r#"[[query]]
name = "py"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "in"
schema = "id BIGINT, city STRING, amount BIGINT"
mode = "FAILFAST"
[[query.transform]]
name = "py-filter"
module = "{}"
config = {{ min = 1500 }}
[query.sink]
format = "json"
path = "out"
"#,
            module.display()
        ),
    );
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    // event_lines' amount is id * 10: the rows from id 150 on, every column kept.
    let rows = committed_json(&dir.path().join("out"));
    assert_eq!(sorted_ids(&rows), (150..300).collect::<Vec<u64>>());
    let expected: Vec<serde_json::Value> = event_lines(150..300)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut got = rows.clone();
    got.sort_by_key(|r| r["id"].as_u64());
    assert_eq!(got, expected);
}

#[test]
fn the_seeds_json_pipeline_in_python_writes_what_the_rust_guest_writes() {
    python_guests();
    let python = example_values("python-json-events");
    assert_eq!(python.len(), 4, "{python:?}");
    assert_eq!(python, example_values("json-events"));
}

#[test]
fn hostile_python_guests_are_stopped_with_what_went_wrong() {
    let module = python_guests().join("python_hostile.wasm");
    let (dir, stderr) = run_hostile(
        &module,
        &[
            ("spin", "loop", r#"timeout = "2 seconds""#),
            ("hoard", "allocate", r#"maxMemory = "128 MiB""#),
            ("snoop", "read-file", ""),
            ("raiser", "raise", ""),
        ],
    );
    let error_of = |q: &str| query_error(&stderr, q);
    let spin = error_of("spin");
    assert!(
        spin.contains("step 'spin-step'") && spin.contains("ran past its deadline of 2s"),
        "{spin}"
    );
    let hoard = error_of("hoard");
    assert!(
        hoard.contains("exceeded its memory limit of 128.0 MiB"),
        "{hoard}"
    );
    // Nothing is granted: the file cannot be opened, and the guest's own traceback says so.
    let snoop = error_of("snoop");
    assert!(
        snoop.contains("step 'snoop-step'")
            && snoop.contains("its stderr ends with")
            && snoop.contains("/etc/hostname")
            && (snoop.contains("FileNotFoundError") || snoop.contains("PermissionError")),
        "{snoop}"
    );
    let raiser = error_of("raiser");
    assert!(
        raiser.contains("ValueError: bad row 7") && raiser.contains("batch 0"),
        "{raiser}"
    );
    for q in ["spin", "hoard", "snoop", "raiser"] {
        assert!(
            committed_json(&dir.path().join(format!("out-{q}"))).is_empty(),
            "{q}"
        );
    }
}

#[test]
fn sluice_new_scaffolds_a_python_transform_that_builds_and_runs() {
    python_guests(); // componentize-py is installed
    new_transform_builds_and_runs("python");
}

#[test]
fn a_python_foreach_batch_handler_writes_two_outputs_once_even_when_a_batch_is_replayed() {
    python_guests();
    two_sinks_survive_a_replay("python-two-sinks");
}

#[test]
fn a_python_aggregate_keeps_its_state_across_a_kill_and_agrees_with_the_built_ins() {
    python_guests();
    spread_survives_a_kill("python-spread");
}
