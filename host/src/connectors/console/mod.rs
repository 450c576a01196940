//! Spark's console sink: each batch printed as a table.

pub mod sink;
