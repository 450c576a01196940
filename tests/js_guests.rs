//! Guests written in JavaScript (ComponentizeJS, `guest-sdk/js`): built from source by
//! `scripts/build-js-guests.sh`, run through the CLI like Rust guests, with the same output
//! as the Rust example and the same containment for hostile code.

mod common;

use common::*;

#[test]
fn the_seeds_json_pipeline_in_javascript_writes_what_the_rust_guest_writes() {
    js_guests();
    // The upload checks accept it, and say what it is written in.
    let checked = run_ok(
        sluice()
            .args(["module", "check"])
            .arg(js_guests().join("js_json_events.wasm")),
    );
    let checked = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.contains("implements sluice:pipeline/transformer")
            && checked.contains(", javascript)"),
        "{checked}"
    );
    let js = example_values("js-json-events");
    assert_eq!(js.len(), 4, "{js:?}");
    assert_eq!(js, example_values("json-events"));
}

#[test]
fn hostile_javascript_guests_are_stopped_with_what_went_wrong() {
    let module = js_guests().join("js_hostile.wasm");
    let (dir, stderr) = run_hostile(
        &module,
        &[
            ("spin", "loop", r#"timeout = "2 seconds""#),
            ("hoard", "allocate", r#"maxMemory = "128 MiB""#),
            ("raiser", "raise", ""),
            ("fine", "pass", ""),
        ],
    );
    let error_of = |q: &str| query_error(&stderr, q);
    let spin = error_of("spin");
    assert!(spin.contains("ran past its deadline of 2s"), "{spin}");
    let hoard = error_of("hoard");
    assert!(
        hoard.contains("exceeded its memory limit of 128.0 MiB"),
        "{hoard}"
    );
    let raiser = error_of("raiser");
    assert!(
        raiser.contains("bad row 7") && raiser.contains("batch 0"),
        "{raiser}"
    );
    for q in ["spin", "hoard", "raiser"] {
        assert!(
            committed_json(&dir.path().join(format!("out-{q}"))).is_empty(),
            "{q}"
        );
    }
    // The well-behaved one passed its rows through beside them: values 0, 1, 2, ...
    assert!(!stderr.contains("error: query 'fine'"), "{stderr}");
    let mut values: Vec<u64> = committed_json(&dir.path().join("out-fine"))
        .iter()
        .map(|r| r["value"].as_u64().unwrap())
        .collect();
    values.sort();
    assert!(!values.is_empty());
    assert_eq!(values, (0..values.len() as u64).collect::<Vec<_>>());
}

#[test]
fn a_javascript_foreach_batch_handler_writes_two_outputs_once_even_when_a_batch_is_replayed() {
    js_guests();
    two_sinks_survive_a_replay("js-two-sinks");
}

#[test]
fn a_javascript_aggregate_keeps_its_state_across_a_kill_and_agrees_with_the_built_ins() {
    js_guests();
    spread_survives_a_kill("js-spread");
}

#[test]
fn sluice_new_scaffolds_a_javascript_transform_that_builds_and_runs() {
    new_transform_builds_and_runs("js");
}
