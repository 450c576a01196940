//! The words every layer reads (as Vector's `src/config/`): a pipeline file as a tree that
//! remembers where each value was written ([`reader`]), the problems found in it
//! ([`diagnostics`]), and the few enums that connectors, operators, guests and the plan all
//! name. Nothing here names a type of a higher module.

pub mod diagnostics;
pub(crate) mod reader;

pub use diagnostics::{Diagnostic, Diagnostics};
pub use reader::{ModuleRef, ModuleResolver, parse_bytes, parse_duration, resolve};

/// The world a step's component must implement, by the kind of step that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuestWorld {
    /// `[[query.transform]]` steps.
    Transformer,
    /// foreachBatch handlers (`format = "foreachBatch"` sinks).
    Handler,
    /// User-defined aggregates (`fn = "udaf"`).
    Aggregator,
    /// `[query.processor]`.
    KeyedProcessor,
    /// Scalar functions for expressions (`[functions]`).
    Function,
}

impl GuestWorld {
    /// The world's name in the WIT package (`sluice:pipeline/transformer`).
    pub fn wit_name(self) -> &'static str {
        match self {
            GuestWorld::Transformer => "sluice:pipeline/transformer",
            GuestWorld::Handler => "sluice:pipeline/handler",
            GuestWorld::Aggregator => "sluice:pipeline/aggregator",
            GuestWorld::KeyedProcessor => "sluice:pipeline/keyed-processor",
            GuestWorld::Function => "sluice:pipeline/function",
        }
    }
}

/// Spark's output modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Only new rows reach the sink.
    #[default]
    Append,
    /// Rows that changed since the last batch reach the sink.
    Update,
    /// The whole result table reaches the sink every batch.
    Complete,
}
