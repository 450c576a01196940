//! What planning SQL costs: a pipeline whose query joins eleven inputs (ten joins between
//! streams, each with keys and an event-time range in ON) and aggregates the result, parsed,
//! planned and checked as `sluice validate` does, in-process.

use std::time::Instant;

use anyhow::{Result, anyhow};

use crate::measure::median;

/// The pipeline: inputs `s0` .. `s10`, each `(k BIGINT, ts TIMESTAMP, v BIGINT)` with a
/// watermark; `s0` joined with each of the others on `k` within a minute, then counted per
/// 5-minute window.
pub fn ten_joins() -> String {
    let mut sql =
        String::from("SELECT window.start AS w, count(*) AS n, sum(s0.v) AS total\nFROM s0");
    for i in 1..=10 {
        sql += &format!(
            "\nJOIN s{i} ON s{i}.k = s0.k AND s{i}.ts BETWEEN s0.ts AND s0.ts + INTERVAL 1 MINUTE"
        );
    }
    sql += "\nWHERE s0.v > 0\nGROUP BY window(s0.ts, '5 minutes')";
    let mut text = format!(
        "[[query]]\nname = \"ten_joins\"\ncheckpointLocation = \"ckpt\"\noutputMode = \"append\"\nsql = \"\"\"\n{sql}\n\"\"\"\n"
    );
    for i in 0..=10 {
        text += &format!(
            "\n[query.inputs.s{i}]\nformat = \"json\"\npath = \"in/s{i}\"\nschema = \"k BIGINT, ts TIMESTAMP, v BIGINT\"\nwatermark = {{ column = \"ts\", delay = \"1 minute\" }}\n"
        );
    }
    text + "\n[query.sink]\nformat = \"json\"\npath = \"out\"\n"
}

/// Parses and plans the ten-join pipeline `runs` times; prints the median and the slowest.
pub fn run(runs: usize) -> Result<()> {
    let text = ten_joins();
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("ten_joins.toml");
    std::fs::write(&file, &text)?;
    let mut ms = Vec::new();
    let mut views = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let pipeline =
            sluice::pipeline::Pipeline::parse(&text, &file).map_err(|e| anyhow!("{e}"))?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
        views = pipeline.queries[0].views.len();
    }
    let slowest = ms.iter().cloned().fold(0.0, f64::max);
    println!(
        "ten joins and an aggregation in SQL ({views} views): parsed, planned and checked in {:.2} ms (median of {runs}), slowest {slowest:.2} ms; the file: {}",
        median(&ms).0,
        file.display()
    );
    std::fs::copy(&file, std::env::temp_dir().join("ten_joins.toml"))?;
    Ok(())
}
