//! Connectors: one folder per external system, holding its options (parsed and checked
//! where the pipeline file is read), its source and its sink — as Arroyo's
//! `arroyo-connectors/src/<name>/`. Adding a connector touches its folder, plus one line in
//! `query::connect` (which connector opens which spec) and the format names the pipeline knows.
//!
//! | connector | source | sink |
//! |---|---|---|
//! | [`file`] (json, csv, parquet, text) | [`file::source`] | [`file::sink`] |
//! | [`kafka`] | [`kafka::source`] | [`kafka::sink`] |
//! | [`rate`] (rate, rate-micro-batch) | [`rate::source`] | — |
//! | [`socket`] | [`socket::source`] | — |
//! | [`nexmark`] | [`nexmark::source`] | — |
//! | [`console`] | — | [`console::sink`] |
//! | [`memory`] | — | [`memory::sink`] |
//! | [`postgres`] | — | [`postgres::sink`] |
//! | [`elasticsearch`] (and OpenSearch) | — | [`elasticsearch::sink`] |

pub mod console;
pub mod elasticsearch;
pub mod file;
pub mod kafka;
pub mod memory;
pub mod nexmark;
pub mod postgres;
pub mod rate;
pub mod socket;
