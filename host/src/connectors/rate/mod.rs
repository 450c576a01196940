//! Spark's `rate` and `rate-micro-batch` generators.

pub mod source;
