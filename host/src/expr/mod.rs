//! Expression steps: Spark SQL expressions as pipeline steps — `selectExpr`, `where`,
//! `withColumn`, `withColumnRenamed`, `drop` — with no Wasm module.
//!
//! Apache DataFusion does the work (its SQL parser, planner, type coercion, functions and
//! physical expressions): an expression is parsed and planned once, against the schema that
//! reaches its step, and evaluated over each batch with Arrow kernels. Written in DataFusion's
//! terms rather than by hand because an expression language is a large, well-specified thing
//! that a maintained engine already gets right (casts, nulls, three-valued logic, coercion).
//!
//! Semantics follow Spark 4 where DataFusion's do: ANSI casts (a value that does not convert
//! is an error, not a null), column names as written (`CAST(x AS STRING)` keeps the name `x`),
//! `STRING` as Arrow `Utf8`. Errors name the step's field and the position inside the
//! expression.

mod ansi;
mod batch_time;
mod compile;
mod datetime_pattern;
mod format_number;
mod functions;
mod json;
mod json_path;
pub(crate) mod parse_guard;
mod qualified;
mod spark_hash;
mod spark_names;
mod spark_types;
mod split;
mod type_of;

pub use batch_time::BatchClock;
pub use compile::{CompiledStep, PlanOptions};
pub use functions::declared;
pub(crate) use functions::is_builtin;

/// What an expression step does (its TOML key says which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprStepKind {
    /// `selectExpr = ["*", "lower(city) AS city_lower", "value.*"]`: the columns it lists.
    SelectExpr(Vec<String>),
    /// `where = "amount > 500"`: the rows the predicate holds for (null is false).
    Where(String),
    /// `withColumn = { name = "x", expr = "..." }`: every column, `x` replaced or appended.
    WithColumn {
        /// The column it sets.
        name: String,
        /// Its value.
        expr: String,
    },
    /// `withColumnRenamed = { existing = "a", new = "b" }`.
    WithColumnRenamed {
        /// The column's name now.
        existing: String,
        /// Its new name.
        new: String,
    },
    /// `drop = ["a", "b"]`: every column but these.
    Drop(Vec<String>),
}

impl ExprStepKind {
    /// The TOML key of the step.
    pub fn key(&self) -> &'static str {
        match self {
            ExprStepKind::SelectExpr(_) => "selectExpr",
            ExprStepKind::Where(_) => "where",
            ExprStepKind::WithColumn { .. } => "withColumn",
            ExprStepKind::WithColumnRenamed { .. } => "withColumnRenamed",
            ExprStepKind::Drop(_) => "drop",
        }
    }
}

/// An expression step as the pipeline says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprStepSpec {
    /// The step's name (progress, errors).
    pub name: String,
    /// What it does.
    pub kind: ExprStepKind,
    /// What a batch whose expressions fail becomes: the query stops (`fail`), or the failing
    /// rows are skipped or sent to a dead-letter output, the others going on.
    pub on_error: crate::wasm::spec::OnError,
}

/// An expression that does not parse, name a known column or function, or type-check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}{}: {message}", .position.map(|p| format!(", at character {p}")).unwrap_or_default())]
pub struct ExprError {
    /// The step's field, e.g. `selectExpr[1]` or `where`.
    pub field: String,
    /// Where in the expression's text (1-based), when known.
    pub position: Option<usize>,
    /// What is wrong.
    pub message: String,
}
