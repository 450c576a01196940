//! `/metrics` in the Prometheus text exposition format.
//!
//! The figures are read at scrape time from what each query already keeps (its last progress
//! record and its run's totals), so the batch loop does no extra work for metrics. Written
//! by hand rather than through a metrics crate: the format is a few lines per family, and a
//! crate's registry would duplicate state the progress records already hold.

use std::fmt::Write;

use super::queries::QueryMetrics;
use crate::progress::{BATCH_SECONDS_BUCKETS, StepTotals};

/// A metric family: name, help, and how to read it.
type Family<T, V> = (&'static str, &'static str, fn(&T) -> V);

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders every query's metrics, and the number of stored module versions.
pub(crate) fn render(queries: &[QueryMetrics], modules: usize) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "sluice_modules",
        "gauge",
        "Module versions in the registry.",
    );
    let _ = writeln!(out, "sluice_modules {modules}");

    let gauges: [Family<QueryMetrics, Option<f64>>; 4] = [
        (
            "sluice_query_input_rows_per_second",
            "Rows read per second since the previous trigger (last batch).",
            |q| q.last.as_ref().map(|p| p.input_rows_per_second),
        ),
        (
            "sluice_query_processed_rows_per_second",
            "Rows processed per second of the last batch's processing time.",
            |q| q.last.as_ref().map(|p| p.processed_rows_per_second),
        ),
        (
            "sluice_query_state_rows",
            "Keys held in state by the query's stateful operators.",
            |q| {
                q.last
                    .as_ref()
                    .map(|p| sum_field(&p.state_operators, "numRowsTotal"))
            },
        ),
        (
            "sluice_query_state_bytes",
            "Approximate memory held by the query's state.",
            |q| {
                q.last
                    .as_ref()
                    .map(|p| sum_field(&p.state_operators, "memoryUsedBytes"))
            },
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, "gauge", help);
        for q in queries {
            if let Some(v) = value(q) {
                let _ = writeln!(out, "{name}{{query=\"{}\"}} {v}", label(&q.name));
            }
        }
    }

    family(
        &mut out,
        "sluice_query_watermark_lag_seconds",
        "gauge",
        "Wall-clock time minus the event-time watermark.",
    );
    let now = chrono::Utc::now();
    for q in queries {
        let watermark = q
            .last
            .as_ref()
            .and_then(|p| p.event_time.get("watermark"))
            .and_then(|w| chrono::DateTime::parse_from_rfc3339(w).ok());
        if let Some(w) = watermark {
            let lag = (now - w.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0;
            let _ = writeln!(
                out,
                "sluice_query_watermark_lag_seconds{{query=\"{}\"}} {lag}",
                label(&q.name)
            );
        }
    }

    // Counts print without a fraction ({} of 3.0 is "3"), so one value type serves all.
    let counters: [Family<QueryMetrics, f64>; 6] = [
        ("sluice_query_batches_total", "Batches committed.", |q| {
            q.totals.batches as f64
        }),
        ("sluice_query_input_rows_total", "Rows read.", |q| {
            q.totals.input_rows as f64
        }),
        (
            "sluice_query_output_rows_total",
            "Rows the sink wrote.",
            |q| q.totals.output_rows as f64,
        ),
        (
            "sluice_query_worker_tasks_total",
            "Tasks the query's batches ran on the worker pool.",
            |q| q.totals.worker_tasks as f64,
        ),
        (
            "sluice_query_worker_cpu_seconds_total",
            "CPU time of those tasks.",
            |q| q.totals.worker_cpu_seconds,
        ),
        (
            "sluice_query_thread_cpu_seconds_total",
            "CPU time of the query's own thread (planning, commits, what runs alone).",
            |q| q.totals.query_thread_cpu_seconds,
        ),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help);
        for q in queries {
            let _ = writeln!(out, "{name}{{query=\"{}\"}} {}", label(&q.name), value(q));
        }
    }

    family(
        &mut out,
        "sluice_query_batch_duration_seconds",
        "histogram",
        "Wall time of each batch (trigger execution).",
    );
    for q in queries {
        let name = label(&q.name);
        let mut cumulative = 0;
        for (bound, count) in BATCH_SECONDS_BUCKETS
            .iter()
            .zip(q.totals.batch_seconds_buckets)
        {
            cumulative += count;
            let _ = writeln!(
                out,
                "sluice_query_batch_duration_seconds_bucket{{query=\"{name}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "sluice_query_batch_duration_seconds_bucket{{query=\"{name}\",le=\"+Inf\"}} {}",
            q.totals.batches
        );
        let _ = writeln!(
            out,
            "sluice_query_batch_duration_seconds_sum{{query=\"{name}\"}} {}",
            q.totals.batch_seconds_sum
        );
        let _ = writeln!(
            out,
            "sluice_query_batch_duration_seconds_count{{query=\"{name}\"}} {}",
            q.totals.batches
        );
    }

    let wasm: [Family<StepTotals, f64>; 3] = [
        (
            "sluice_wasm_calls_total",
            "Calls into a transform step's module (one per record batch).",
            |s| s.calls as f64,
        ),
        (
            "sluice_wasm_call_errors_total",
            "Calls that failed (trap, error, deadline).",
            |s| s.failed as f64,
        ),
        (
            "sluice_wasm_call_seconds_total",
            "Time spent in a transform step's module.",
            |s| s.seconds,
        ),
    ];
    for (name, help, value) in wasm {
        family(&mut out, name, "counter", help);
        for q in queries {
            for (step, stats) in &q.totals.steps {
                let _ = writeln!(
                    out,
                    "{name}{{query=\"{}\",step=\"{}\",module=\"{}\"}} {}",
                    label(&q.name),
                    label(step),
                    label(&stats.module),
                    value(stats)
                );
            }
        }
    }
    out
}

fn sum_field(operators: &[serde_json::Value], field: &str) -> f64 {
    operators
        .iter()
        .filter_map(|o| o.get(field)?.as_f64())
        .sum()
}
