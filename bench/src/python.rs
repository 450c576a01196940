//! Python and JavaScript guests against Rust (issue 20): the seeds' JSON pipeline
//! (`from_json`, lower-case, filter, `to_json`) with `examples/json-events` (Rust),
//! `examples/python-json-events` (componentize-py) and `examples/js-json-events`
//! (ComponentizeJS) on the same input; and what each component costs to load: its size,
//! its first compile, a load from the compile cache, an instantiation with `init`, and the
//! memory one instance holds.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use arrow_schema::{DataType, Field, Schema};
use sluice::pipeline::{GuestLimits, OnError, TransformSpec};
use sluice::wasm::transform::WasmTransform;

use crate::measure::{median, resident, spread_percent};
use crate::pipeline::run_pipeline_at;

const CITIES: [&str; 4] = ["Seoul", "BUSAN", "Incheon", "Gwangju"];
const EVENTS: [&str; 4] = ["click", "view", "purchase", "heartbeat"];

/// Writes `lines` of the seeds' JSON events (a quarter of them heartbeats, which the
/// pipeline drops) to `<dir>/in/events.jsonl`, and returns that folder.
pub fn write_events(dir: &Path, lines: usize) -> Result<std::path::PathBuf> {
    let input = dir.join("in");
    std::fs::create_dir_all(&input)?;
    let text: String = (0..lines)
        .map(|i| {
            format!(
                "{{\"city\":\"{}\",\"domain\":\"d{}.example.com\",\"event\":\"{}\"}}\n",
                CITIES[i % 4],
                i % 10,
                EVENTS[(i / 4) % 4]
            )
        })
        .collect();
    std::fs::write(input.join("events.jsonl"), text)?;
    Ok(input)
}

/// Runs the benchmark and prints markdown tables.
pub fn run(modules: &Path, lines: usize, runs: usize) -> Result<()> {
    let work = tempfile::tempdir()?;
    // A compile cache of our own, empty: the first load of each module compiles it.
    // SAFETY: set before any other thread exists (the runtime starts below).
    unsafe { std::env::set_var("SLUICE_CACHE_DIR", work.path().join("cache")) };
    let input = write_events(work.path(), lines)?;
    let guests = [
        ("Rust", "json_events.wasm"),
        ("Python", "python_json_events.wasm"),
        ("JavaScript", "js_json_events.wasm"),
    ];

    println!("### Loading the component\n");
    println!(
        "| guest | size | first compile | load again (cached) | instantiate + init (median of 10) | resident memory per instance |"
    );
    println!("|---|---|---|---|---|---|");
    let runtime = sluice::wasm::runtime(false).map_err(|e| anyhow!("{e}"))?;
    let schema = Arc::new(Schema::new(vec![Field::new("value", DataType::Utf8, true)]));
    for (lang, file) in guests {
        let path = modules.join(file);
        let size = std::fs::metadata(&path)?.len();
        let t = Instant::now();
        runtime.load(&path).map_err(|e| anyhow!("{e}"))?;
        let compile = t.elapsed();
        let t = Instant::now();
        runtime.load(&path).map_err(|e| anyhow!("{e}"))?;
        let cached = t.elapsed();
        let spec = TransformSpec {
            name: "bench".into(),
            module: path.clone(),
            module_ref: None,
            config: serde_json::json!({ "events": ["click", "view", "purchase"] }).into(),
            limits: GuestLimits::default(),
            on_error: OnError::Fail,
        };
        let mut ms = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            let step = WasmTransform::new(spec.clone(), "bench", schema.clone())?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            drop(step);
        }
        // Ten instances held at once: what each adds to the process.
        let before = resident();
        let held: Vec<WasmTransform> = (0..10)
            .map(|_| WasmTransform::new(spec.clone(), "bench", schema.clone()))
            .collect::<Result<_, _>>()?;
        let per_instance = resident().saturating_sub(before) / 10;
        drop(held);
        println!(
            "| {lang} | {:.1} MB | {:.0} ms | {:.0} ms | {:.1} ms | {:.1} MB |",
            size as f64 / 1e6,
            compile.as_secs_f64() * 1000.0,
            cached.as_secs_f64() * 1000.0,
            median(&ms).0,
            per_instance as f64 / 1e6
        );
    }

    println!(
        "\n### The JSON pipeline: {lines} lines, text source → transform → blackhole, median of {runs}\n"
    );
    println!("| guest | rows/s | spread | rows out |");
    println!("|---|---|---|---|");
    for (lang, file) in guests {
        let mut rates = Vec::new();
        let mut out_rows = 0;
        for _ in 0..runs {
            let text = format!(
                r#"[[query]]
name = "json-{lang}"
trigger = "availableNow"
[query.source]
format = "text"
path = "{input}/*.jsonl"
[[query.transform]]
name = "parse-lower-filter"
module = "{module}"
config = {{ events = ["click", "view", "purchase"] }}
[query.sink]
format = "blackhole"
"#,
                input = input.display(),
                module = modules.join(file).display()
            );
            let run = run_pipeline_at(&text, None)?;
            if run.input_rows != lines as u64 {
                bail!("{lang}: read {} lines of {lines}", run.input_rows);
            }
            out_rows = run.progress.iter().map(|p| p.sink.num_output_rows).sum();
            rates.push(lines as f64 / run.span.wall.as_secs_f64());
        }
        println!(
            "| {lang} | {:.0} | {:.0}% | {out_rows} |",
            median(&rates).0,
            spread_percent(&rates)
        );
    }
    Ok(())
}
