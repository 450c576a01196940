//! # Sluice
//!
//! A micro-batch streaming engine in the manner of Spark Structured Streaming, whose user
//! code runs as WebAssembly components over Apache Arrow batches.
//!
//! A *pipeline* file ([`pipeline`]) declares queries. Each query ([`query`]) repeatedly asks
//! its [`source`] how far the data goes, records that in its [`checkpoint`] (the write-ahead
//! log), reads the rows as Arrow `RecordBatch`es, hands them to its [`sink`] with the batch id,
//! and records the commit. The [`trigger`] decides when the next batch starts. Because every
//! batch's offsets are logged before it runs and sinks skip batch ids they have committed, a
//! process killed at any instant resumes with exactly the output of an uninterrupted run.
//!
//! ```no_run
//! use sluice::{manager::QueryManager, pipeline::Pipeline};
//!
//! let pipeline = Pipeline::load("examples/rate-to-console.toml".as_ref())?;
//! let manager = QueryManager::start_pipeline(&pipeline, None)?;
//! for (name, outcome) in manager.await_all(pipeline.on_query_failure) {
//!     println!("{name}: {outcome:?}");
//! }
//! # Ok::<(), sluice::error::Error>(())
//! ```
//!
//! Where things live:
//!
//! | concept | module |
//! |---|---|
//! | pipeline files and their validation | [`pipeline`], [`schema`] |
//! | the batch loop of one query | [`query`] |
//! | several queries in a process | [`manager`] |
//! | when batches run | [`trigger`] |
//! | the source and sink traits | [`source`], [`sink`] |
//! | files, Kafka, rate, socket, Nexmark, console, memory: options, source, sink | [`connectors`] |
//! | offsets and commit logs | [`checkpoint`] |
//! | event time | [`watermark`], [`operators::window`] |
//! | aggregation, deduplication | [`operators`] |
//! | versioned operator state | [`state`] |
//! | progress records and status | [`progress`] |
//! | Wasm transforms and foreachBatch handlers | [`wasm`] |
//! | the module registry (`name@version` → content-addressed components) | [`registry`] |
//! | `sluice serve`: HTTP API, served queries, metrics | [`server`] |
//! | the `sluice` command line | [`cli`] |

pub mod checkpoint;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod connectors;
pub mod error;
pub mod expr;
pub mod failpoint;
#[cfg(test)]
mod floors;
pub mod fsutil;
pub mod manager;
pub mod operators;
pub mod parallel;
pub mod pipeline;
pub mod progress;
pub mod qualifier;
pub mod query;
pub mod registry;
pub mod schema;
pub mod secret;
pub mod server;
pub mod sink;
pub mod source;
pub mod state;
pub mod storage;
pub mod trigger;
pub mod untrusted;
pub mod wasm;
pub mod watermark;
