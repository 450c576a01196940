//! Checkpoint entries as a restart reads them: `offsets/N`, `commits/N`, `metadata`, a file
//! source's log, state deltas and snapshots (through the aggregation's and the keyed
//! processor's layouts, keys and values decoded as `sluice state show` and a restart do),
//! `layout.json`, and the file sink's `_sluice_metadata/N`. The first byte picks the entry;
//! the rest is its bytes. A corrupt entry must be an error naming the file, never a panic.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use sluice::checkpoint::Checkpoint;
use sluice::storage::Location;

mod common;

const AGGREGATE_LAYOUT: &[u8] = include_bytes!("../fixtures/aggregate-layout.json");
const AGGREGATE_DELTA: &[u8] = include_bytes!("../fixtures/aggregate.delta");
const PROCESSOR_LAYOUT: &[u8] = include_bytes!("../fixtures/processor-layout.json");
const PROCESSOR_DELTA: &[u8] = include_bytes!("../fixtures/processor.delta");

thread_local! {
    static DIR: PathBuf = tempfile::tempdir().unwrap().keep();
}

/// Writes `bytes` at `dir/rel`, creating folders.
fn put(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A fresh, empty folder for one input.
fn fresh(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// State of `op` at version 0 from a layout and a delta (or a snapshot), read as a restart
/// and `sluice state show` read it.
fn state(dir: &Path, op: &str, layout: &[u8], version0: &[u8], kind: &str, processor: bool) {
    put(dir, &format!("state/{op}/layout.json"), layout);
    put(dir, &format!("state/{op}/0/0.{kind}"), version0);
    let location = Location::Local(dir.to_path_buf());
    let all = |_: &serde_json::Map<String, serde_json::Value>| true;
    if processor {
        let _ = sluice::operators::processor::layout::state_rows(&location, op, 0, &all);
    } else {
        let _ = sluice::operators::aggregate::state_rows(&location, op, 0, &all);
    }
}

fuzz_target!(|data: &[u8]| {
    let [kind, bytes @ ..] = data else {
        return;
    };
    DIR.with(|root| match kind % 11 {
        0 => {
            let dir = fresh(root, "offsets");
            put(&dir, "offsets/0", bytes);
            if let Ok(c) = Checkpoint::open(&dir, &["FileSource[in]".into()]) {
                let _ = c.latest_offsets();
            }
        }
        1 => {
            let dir = fresh(root, "commits");
            put(&dir, "commits/0", bytes);
            if let Ok(c) = Checkpoint::open(&dir, &["FileSource[in]".into()]) {
                let _ = c.latest_commit();
            }
        }
        2 => {
            let dir = fresh(root, "metadata");
            put(&dir, "metadata", bytes);
            let _ = Checkpoint::open(&dir, &["FileSource[in]".into()]);
        }
        3 => {
            let dir = fresh(root, "source-log");
            put(&dir, "log/0", bytes);
            let reading = common::Reading {
                format: sluice::pipeline::FileFormat::Json,
                mode: sluice::pipeline::ParseMode::Permissive,
                schema: "id BIGINT",
                header: false,
                sep: b',',
            };
            let _ = common::file_source(&reading, &dir, &dir.join("log"));
        }
        4 => state(
            &fresh(root, "a"),
            "aggregate",
            AGGREGATE_LAYOUT,
            bytes,
            "delta",
            false,
        ),
        5 => state(
            &fresh(root, "a"),
            "aggregate",
            AGGREGATE_LAYOUT,
            bytes,
            "snapshot",
            false,
        ),
        6 => state(
            &fresh(root, "a"),
            "aggregate",
            bytes,
            AGGREGATE_DELTA,
            "delta",
            false,
        ),
        7 => state(
            &fresh(root, "p"),
            "processor",
            PROCESSOR_LAYOUT,
            bytes,
            "delta",
            true,
        ),
        8 => state(
            &fresh(root, "p"),
            "processor",
            PROCESSOR_LAYOUT,
            bytes,
            "snapshot",
            true,
        ),
        9 => state(
            &fresh(root, "p"),
            "processor",
            bytes,
            PROCESSOR_DELTA,
            "delta",
            true,
        ),
        _ => {
            let dir = fresh(root, "sink");
            put(&dir, "_sluice_metadata/0", bytes);
            let _ = sluice::connectors::file::sink::committed_files(&dir);
        }
    });
});
