//! Spark's memory sink: each batch kept in a table the process can query.

pub mod query;
pub mod sink;
