//! # Sluice guest SDK
//!
//! Write a Sluice transform step, foreachBatch handler, aggregate or keyed processor (per-key
//! state with TTL and timers, see [`Processor`] with the `processor` feature) in Rust; build it as a WebAssembly
//! component; name it in a pipeline. The host calls it once per micro-batch with an Arrow
//! [`RecordBatch`] — never once per row.
//!
//! ```toml
//! # Cargo.toml of your guest
//! [lib]
//! crate-type = ["cdylib"]
//! [dependencies]
//! sluice-guest-sdk = { path = "../../guest-sdk", features = ["transform"] }  # or "handler"
//! ```
//!
//! A transform that keeps rows whose `amount` is at least a configured minimum:
//!
//! ```text
//! use sluice_guest_sdk::prelude::*;
//!
//! struct MinAmount { min: i64, schema: SchemaRef }
//!
//! impl Transform for MinAmount {
//!     fn init(config: &Config, input: SchemaRef) -> Result<Self, Error> {
//!         let min = config["min"].as_i64().ok_or("config needs an integer `min`")?;
//!         Ok(MinAmount { min, schema: input })
//!     }
//!     fn output_schema(&self) -> SchemaRef {
//!         self.schema.clone()
//!     }
//!     fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
//!         let amount = column::<Int64Array>(&batch, "amount")?;
//!         let keep: BooleanArray = amount.iter().map(|a| Some(a.is_some_and(|a| a >= self.min))).collect();
//!         out.emit(&filter_record_batch(&batch, &keep)?)
//!     }
//! }
//!
//! export_transform!(MinAmount);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release`; the component is
//! `target/wasm32-wasip2/release/<crate>.wasm`. In the pipeline:
//!
//! ```toml
//! [[query.transform]]
//! module = "path/to/min_amount.wasm"
//! config = { min = 100 }
//! ```
//!
//! A guest has no files, network or environment of its own: a handler gets only what the
//! pipeline grants — named outputs ([`sinks::write`]), one directory ([`files`]), allow-listed
//! HTTP hosts ([`http`]) — and every guest can [`log`].

pub mod abi;

#[cfg(any(
    all(feature = "transform", feature = "handler"),
    all(feature = "transform", feature = "aggregate"),
    all(feature = "handler", feature = "aggregate"),
    all(feature = "processor", feature = "transform"),
    all(feature = "processor", feature = "handler"),
    all(feature = "processor", feature = "aggregate"),
    all(feature = "function", feature = "transform"),
    all(feature = "function", feature = "handler"),
    all(feature = "function", feature = "aggregate"),
    all(feature = "function", feature = "processor"),
))]
compile_error!(
    "enable exactly one of the features `transform`, `handler`, `aggregate`, `processor` or `function`: a component implements one world"
);

#[cfg(feature = "transform")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "transformer",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "sluice_guest_sdk::bindings",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

#[cfg(feature = "handler")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "handler",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "sluice_guest_sdk::bindings",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

#[cfg(feature = "aggregate")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "aggregator",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "sluice_guest_sdk::bindings",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

#[cfg(feature = "function")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "function",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "sluice_guest_sdk::bindings",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

#[cfg(feature = "processor")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "keyed-processor",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "sluice_guest_sdk::bindings",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

#[cfg(any(
    feature = "transform",
    feature = "handler",
    feature = "aggregate",
    feature = "processor",
    feature = "function"
))]
mod guest;
#[cfg(any(
    feature = "transform",
    feature = "handler",
    feature = "aggregate",
    feature = "processor",
    feature = "function"
))]
pub use guest::*;
