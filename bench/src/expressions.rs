//! Expression steps against the Rust Wasm guest (issue 31): the seeds' JSON pipeline
//! (`from_json`, lower-case, filter, `to_json`) as `examples/expr-json-events.toml`'s four
//! expression steps and as `examples/json-events`'s one Wasm transform, on the same input, in
//! the same process, alternately; text source → steps → blackhole.

use std::path::Path;

use anyhow::{Result, bail};

use crate::measure::{median, spread_percent};
use crate::pipeline::run_pipeline_at;

/// The expression steps of `examples/expr-json-events.toml`.
const EXPRESSION_STEPS: &str = r#"[[query.transform]]
selectExpr = ["from_json(value, 'city STRING, domain STRING, event STRING') AS value"]
[[query.transform]]
selectExpr = ["lower(value.city) AS lower_city", "value.domain AS domain", "value.event AS behavior"]
[[query.transform]]
where = "behavior IN ('click', 'view', 'purchase')"
[[query.transform]]
selectExpr = ["to_json(named_struct('lower_city', lower_city, 'domain', domain, 'behavior', behavior)) AS value"]
"#;

/// Runs both `runs` times over `lines` lines and prints a markdown table.
pub fn run(modules: &Path, lines: usize, runs: usize) -> Result<()> {
    let work = tempfile::tempdir()?;
    let input = crate::python::write_events(work.path(), lines)?;
    let wasm = format!(
        "[[query.transform]]\nmodule = \"{}\"\nconfig = {{ events = [\"click\", \"view\", \"purchase\"] }}\n",
        modules.join("json_events.wasm").display()
    );
    let variants = [
        ("expressions", EXPRESSION_STEPS.to_owned()),
        ("Rust Wasm", wasm),
    ];
    let mut rates = vec![Vec::new(); variants.len()];
    let mut out_rows = vec![0u64; variants.len()];
    for _ in 0..runs {
        for (i, (name, steps)) in variants.iter().enumerate() {
            let text = format!(
                "[[query]]\nname = \"json\"\ntrigger = \"availableNow\"\n[query.source]\nformat = \"text\"\npath = \"{}/*.jsonl\"\n{steps}[query.sink]\nformat = \"blackhole\"\n",
                input.display()
            );
            let run = run_pipeline_at(&text, None)?;
            if run.input_rows != lines as u64 {
                bail!("{name}: read {} lines of {lines}", run.input_rows);
            }
            out_rows[i] = run.progress.iter().map(|p| p.sink.num_output_rows).sum();
            rates[i].push(lines as f64 / run.span.wall.as_secs_f64());
        }
    }
    println!(
        "### The seeds' JSON pipeline: {lines} lines, text source → steps → blackhole, median of {runs}\n"
    );
    println!("| steps | rows/s | spread | rows out |");
    println!("|---|---|---|---|");
    for (i, (name, _)) in variants.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.0}% | {} |",
            median(&rates[i]).0,
            spread_percent(&rates[i]),
            out_rows[i]
        );
    }
    if out_rows[0] != out_rows[1] {
        bail!("the two wrote {} and {} rows", out_rows[0], out_rows[1]);
    }
    Ok(())
}
