//! `sluice-bench`: Sluice's benchmark harness. Each subcommand runs one benchmark unthrottled
//! in this process and prints its figures as a markdown table for docs/BENCHMARKS.md.
//!
//! ```text
//! cargo run --release -p sluice-bench -- engine [json_to_parquet|round_trip]
//! cargo run --release -p sluice-bench -- expressions [--lines N] [--runs R]
//! cargo run --release -p sluice-bench -- event-time [tumbling_sum|sliding_count|state_size]
//! cargo run --release -p sluice-bench -- kafka [--records N] [--runs R]
//! cargo run --release -p sluice-bench -- kafka-latency [--rates 1000,10000] [--seconds S] [--interval "1 second"]
//! cargo run --release -p sluice-bench -- postgres [--rows N] [--runs R]
//! cargo run --release -p sluice-bench -- serve [--runs R]
//! cargo run --release -p sluice-bench -- nexmark --query q5 --events 10000000 [--runs R]
//! cargo run --release -p sluice-bench -- nexmark --all
//! cargo run --release -p sluice-bench -- processor
//! cargo run --release -p sluice-bench -- python [--lines N] [--runs R]
//! cargo run --release -p sluice-bench -- cluster [--records N] [--keys K]
//! cargo run -p sluice-bench -- soak --minutes 60 [--csv docs/soak-60min.csv]
//! ```

mod cassandra;
mod cluster;
mod dashboard;
mod elasticsearch;
mod engine;
mod event_time;
mod expressions;
mod join;
mod kafka;
mod kafka_latency;
mod measure;
mod nexmark;
mod pipeline;
mod postgres;
mod processor;
mod python;
mod serve;
mod soak;
mod sql_planning;
mod storage;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sluice-bench", about = "Sluice's benchmarks", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The engine: json → parquet throughput, and the round trip of an almost empty batch.
    Engine {
        /// Only the benchmarks whose name contains this (json_to_parquet, round_trip).
        only: Option<String>,
    },
    /// Event time: tumbling sum, sliding count, a million keys in state.
    EventTime {
        /// Only the benchmarks whose name contains this (tumbling_sum, sliding_count, state_size).
        only: Option<String>,
    },
    /// What the dashboard costs: Nexmark q0 with and without the page open in a browser.
    Dashboard {
        /// Runs each way (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Hold the run to core 0 and the browser to core 1.
        #[arg(long)]
        pin: bool,
    },
    /// Keyed processor: a Wasm counter per key over a million keys against native count.
    Processor,
    /// Scale-out: one and two members of a clustered query, the hand-over after a kill, and
    /// restoring a partition's state of a million keys.
    Cluster {
        /// Records through the copy query per throughput run.
        #[arg(long, default_value_t = 500_000)]
        records: u64,
        /// Keys in the restored partition's state.
        #[arg(long, default_value_t = 1_000_000)]
        keys: u64,
    },
    /// Joins: stream–static probe rate, stream–stream state size.
    Join {
        /// Only the benchmarks whose name contains this (static_probe, symmetric_state).
        only: Option<String>,
    },
    /// JSON files → Cassandra (kassandra) against the Python driver's concurrent execution.
    Cassandra {
        /// Rows loaded per run.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Runs of each load (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// JSON files → Elasticsearch (noida-db) against curl posting the same NDJSON to _bulk.
    Elasticsearch {
        /// Documents loaded per run.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Runs of each load (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// JSON → PostgreSQL (append, upsert) against psql \copy of the same rows.
    Postgres {
        /// Rows loaded per run.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Runs of each load (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Kafka → pass-through Wasm → Kafka against the raw consume rate of the same client.
    Kafka {
        /// Records of 100 bytes in the input topic.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Runs of each measurement (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// End-to-end latency Kafka → pass-through Wasm → Kafka at steady rates, micro-batch and
    /// continuous, at-least-once and exactly-once.
    KafkaLatency {
        /// Records per second, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1000u64, 10000])]
        rates: Vec<u64>,
        /// Seconds each run produces for (the first is warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The continuous trigger's checkpoint interval.
        #[arg(long, default_value = "1 second")]
        interval: String,
        /// Only the runs whose label contains this ("continuous", "exactly-once", "10000").
        only: Option<String>,
    },
    /// Nexmark queries (examples/nexmark/), unthrottled, to a blackhole sink.
    Nexmark {
        /// q0, q1, q2, q3, q4, q5, q7, q8 or q9 (with --sql also q10, q11, q14-q17, q20-q22).
        #[arg(long, required_unless_present = "all")]
        query: Option<String>,
        /// Run every query and print a markdown table.
        #[arg(long)]
        all: bool,
        /// The queries written in SQL (examples/nexmark-sql/) instead of TOML and Wasm.
        #[arg(long)]
        sql: bool,
        /// Events per run.
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Runs per query (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Planning SQL: a query of ten joins and an aggregation, parsed, planned and checked.
    SqlPlanning {
        /// Runs (the median is reported).
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Module registry and `sluice serve`: upload-to-ready, instantiation, first batch.
    Serve {
        /// Runs of each measurement.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Expression steps against the Rust Wasm guest: the seeds' JSON pipeline's rows/s.
    Expressions {
        /// JSON lines in the input.
        #[arg(long, default_value_t = 1_000_000)]
        lines: usize,
        /// Runs of each (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Python and JavaScript guests against Rust: the JSON pipeline's rows/s, load and
    /// instance costs.
    Python {
        /// JSON lines in the input.
        #[arg(long, default_value_t = 200_000)]
        lines: usize,
        /// Runs of the pipeline per guest (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Object storage: json → parquet with checkpoint and sink on S3 (moto) against local disk.
    Storage {
        /// Runs each way (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// One `sluice serve` under steady input for a long time: Kafka → Wasm → windows →
    /// Kafka and files → join → PostgreSQL, a module swap and a graceful restart on a
    /// schedule, memory, descriptors, threads and checkpoint size sampled every 10 s.
    Soak {
        /// How long the inputs run, minutes.
        #[arg(long, default_value_t = 60.0)]
        minutes: f64,
        /// Kafka records a second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Rows of the file written each second.
        #[arg(long, default_value_t = 200)]
        file_rows: u64,
        /// Seconds between module swaps.
        #[arg(long, default_value_t = 60)]
        swap_every: u64,
        /// Seconds between graceful restarts of the file query.
        #[arg(long, default_value_t = 300)]
        restart_every: u64,
        /// Write the samples here as CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Serves a mock Kafka cluster (used by `kafka` as its broker process).
    #[command(hide = true)]
    Broker {
        /// NAME:PARTITIONS
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// KIP-848 groups: the broker's session timeout (ms); the heartbeat is a fifth of it.
        #[arg(long)]
        group_consumer_session_timeout_ms: Option<i32>,
    },
}

/// The repository root (for the example guests).
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the guest components from source (as the tests do) and returns the path of one.
fn guest(file: &str) -> Result<PathBuf> {
    let status = std::process::Command::new("bash")
        .arg(repo().join("scripts/build-guests.sh"))
        .status()
        .context("running scripts/build-guests.sh")?;
    anyhow::ensure!(status.success(), "building the guests failed");
    Ok(repo().join("examples/modules").join(file))
}

fn main() -> Result<()> {
    // `sluice-bench sluice ...` is the `sluice` command line: the cluster benchmark runs its
    // members as processes of this binary.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "sluice") {
        let code = sluice::cli::main_with(args.into_iter().skip(1));
        std::process::exit(if code == std::process::ExitCode::SUCCESS {
            0
        } else {
            1
        });
    }
    match Cli::parse().command {
        Command::Cluster { records, keys } => {
            cluster::run(&cluster::ClusterBench { records, keys })
        }
        Command::Engine { only } => engine::run(only.as_deref()),
        Command::EventTime { only } => event_time::run_all(only.as_deref()),
        Command::Join { only } => join::run(only.as_deref()),
        Command::Processor => processor::run(&guest("key_counter.wasm")?),
        Command::Dashboard { runs, pin } => dashboard::run(runs, pin),
        Command::Postgres { rows, runs } => postgres::run(rows, runs),
        Command::Elasticsearch { rows, runs } => elasticsearch::run(rows, runs),
        Command::Cassandra { rows, runs } => cassandra::run(rows, runs),
        Command::Kafka { records, runs } => kafka::run(&kafka::KafkaBench {
            records,
            runs,
            module: guest("pass_through.wasm")?,
        }),
        Command::KafkaLatency {
            rates,
            seconds,
            interval,
            only,
        } => kafka_latency::run(&kafka_latency::LatencyBench {
            rates,
            seconds,
            interval,
            only,
            module: guest("pass_through.wasm")?,
        }),
        Command::Nexmark {
            query,
            all,
            sql,
            events,
            runs,
        } => {
            // The Wasm steps of q1, q2 and q5, built from source.
            guest("nexmark.wasm")?;
            let examples = repo().join(if sql {
                "examples/nexmark-sql"
            } else {
                "examples/nexmark"
            });
            if all {
                let mut figures = Vec::new();
                let extra: &[&str] = if sql { &nexmark::SQL_ONLY } else { &[] };
                let queries = nexmark::QUERIES
                    .iter()
                    .map(|(q, _, _)| *q)
                    .chain(extra.iter().copied());
                for q in queries {
                    let f = nexmark::run_query(&examples, q, events, runs)?;
                    nexmark::print_one(&f);
                    figures.push(f);
                }
                println!(
                    "
{}",
                    nexmark::table(&figures, runs)
                );
            } else if let Some(q) = query {
                nexmark::print_one(&nexmark::run_query(&examples, &q, events, runs)?);
            }
            Ok(())
        }
        Command::Storage { runs } => storage::run(runs),
        Command::Soak {
            minutes,
            rate,
            file_rows,
            swap_every,
            restart_every,
            csv,
        } => soak::run(&soak::SoakBench {
            minutes,
            rate,
            file_rows,
            swap_every,
            restart_every,
            csv,
            modules: [
                guest("pass_through.wasm")?,
                guest("hostile_transform.wasm")?,
            ],
        }),
        Command::SqlPlanning { runs } => sql_planning::run(runs),
        Command::Expressions { lines, runs } => {
            let modules = guest("json_events.wasm")?;
            expressions::run(modules.parent().context("modules dir")?, lines, runs)
        }
        Command::Python { lines, runs } => {
            let modules = guest("json_events.wasm")?;
            let status = std::process::Command::new("bash")
                .arg(repo().join("scripts/build-python-guests.sh"))
                .status()
                .context("running scripts/build-python-guests.sh")?;
            anyhow::ensure!(status.success(), "building the Python guests failed");
            let status = std::process::Command::new("bash")
                .arg(repo().join("scripts/build-js-guests.sh"))
                .status()
                .context("running scripts/build-js-guests.sh")?;
            anyhow::ensure!(status.success(), "building the JavaScript guests failed");
            python::run(modules.parent().context("modules dir")?, lines, runs)
        }
        Command::Serve { runs } => {
            let modules = guest("pass_through.wasm")?;
            serve::run(modules.parent().context("modules dir")?, runs)
        }
        Command::Broker {
            topics,
            group_consumer_session_timeout_ms,
        } => kafka::serve_broker(&topics, group_consumer_session_timeout_ms),
    }
}
