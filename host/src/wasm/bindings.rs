//! Host bindings generated from `wit/` for the five worlds.
//!
//! `Borrowing` ownership makes the batch types the host *passes* to a guest borrow the host's
//! Arrow buffers (so the only copy is the canonical ABI's memcpy into guest memory), while
//! batches the guest hands back (`output.emit`, `sinks.write`) arrive as owned byte vectors
//! the host wraps as Arrow buffers without a further copy.

/// The `transformer` world: a transform step.
pub mod transformer {
    wasmtime::component::bindgen!({
        world: "transformer",
        path: "../wit",
        ownership: Borrowing { duplicate_if_necessary: true },
        // `emit` and `emit-rows` trap the guest when it passes its budget (`wasm::EmitBudget`).
        imports: {
            "sluice:pipeline/output.emit": trappable,
            "sluice:pipeline/rows.emit-rows": trappable,
        },
    });
}

/// The `handler` world: a foreachBatch sink.
pub mod handler {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "../wit",
        ownership: Borrowing { duplicate_if_necessary: true },
        with: {
            "sluice:pipeline/log": crate::wasm::bindings::transformer::sluice::pipeline::log,
            "sluice:pipeline/arrow": crate::wasm::bindings::transformer::sluice::pipeline::arrow,
        },
    });
}

/// The `aggregator` world: a user-defined aggregate function.
pub mod aggregator {
    wasmtime::component::bindgen!({
        world: "aggregator",
        path: "../wit",
        ownership: Borrowing { duplicate_if_necessary: true },
        with: {
            "sluice:pipeline/log": crate::wasm::bindings::transformer::sluice::pipeline::log,
            "sluice:pipeline/arrow": crate::wasm::bindings::transformer::sluice::pipeline::arrow,
            "sluice:pipeline/output": crate::wasm::bindings::transformer::sluice::pipeline::output,
        },
    });
}

/// The `function` world: a scalar function for expressions.
pub mod function {
    wasmtime::component::bindgen!({
        world: "function",
        path: "../wit",
        ownership: Borrowing { duplicate_if_necessary: true },
        with: {
            "sluice:pipeline/log": crate::wasm::bindings::transformer::sluice::pipeline::log,
            "sluice:pipeline/arrow": crate::wasm::bindings::transformer::sluice::pipeline::arrow,
            "sluice:pipeline/output": crate::wasm::bindings::transformer::sluice::pipeline::output,
        },
    });
}

/// The `keyed-processor` world: per-key state with TTL and timers.
pub mod processor {
    wasmtime::component::bindgen!({
        world: "keyed-processor",
        path: "../wit",
        ownership: Borrowing { duplicate_if_necessary: true },
        with: {
            "sluice:pipeline/log": crate::wasm::bindings::transformer::sluice::pipeline::log,
            "sluice:pipeline/arrow": crate::wasm::bindings::transformer::sluice::pipeline::arrow,
            "sluice:pipeline/output": crate::wasm::bindings::transformer::sluice::pipeline::output,
        },
    });
}
