//! Test fixture: a keyed processor that counts rows per key (one int64 value `count`) and
//! misbehaves in the way `config.behavior` names. It implements the WIT export directly,
//! not through the SDK's `Processor` trait, so it can send what the SDK never would:
//! - `extra-key`: returns state for one key more than it was given;
//! - `malformed`: stores 3 bytes in the int64 variable;
//! - `past-timer`: registers a timer at the batch's clock (not after it);
//! - `timer-loop`: registers a timer after the watermark on every key, and spins forever in
//!   the batch where timers fire (an endless loop in the timer callback).
//!
//! Otherwise it counts, emitting nothing.

use std::cell::RefCell;
use std::sync::Arc;

use sluice_guest_sdk::abi;
use sluice_guest_sdk::arrow_array::builder::BinaryBuilder;
use sluice_guest_sdk::arrow_array::{
    Array, ArrayRef, BinaryArray, Int64Array, ListArray, RecordBatch,
};
use sluice_guest_sdk::arrow_schema::{Schema, SchemaRef};
use sluice_guest_sdk::bindings::exports::sluice::pipeline::processor::{
    BatchContext, ExpiredTimer, Guest, ProcessorSpec, StateKind, StateVariable, TimeMode,
    ValueEncoding,
};
use sluice_guest_sdk::bindings::sluice::pipeline::arrow::{ArrayNodeResult, BatchResult};

struct Config {
    behavior: String,
    key: SchemaRef,
    input: SchemaRef,
    state: SchemaRef,
}

thread_local! {
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
}

fn receive(schema: &SchemaRef, b: BatchResult) -> Result<RecordBatch, String> {
    let nodes = b.nodes.into_iter().map(|n| abi::NodeOwned {
        len: n.len,
        offset: n.offset,
        null_count: n.null_count,
        validity: n
            .validity
            .map(sluice_guest_sdk::arrow_buffer::Buffer::from_vec),
        buffers: n
            .buffers
            .into_iter()
            .map(sluice_guest_sdk::arrow_buffer::Buffer::from_vec)
            .collect(),
        num_children: n.num_children,
    });
    abi::to_batch(schema, b.num_rows, nodes, false).map_err(|e| e.to_string())
}

fn send(batch: &RecordBatch) -> Result<BatchResult, String> {
    let data = abi::batch_data(batch);
    let nodes = abi::flatten_all(&data).map_err(|e| e.to_string())?;
    Ok(BatchResult {
        num_rows: batch.num_rows() as u32,
        nodes: nodes
            .iter()
            .map(|n| ArrayNodeResult {
                len: n.len,
                offset: n.offset,
                null_count: n.null_count,
                validity: n.validity.as_deref().map(<[u8]>::to_vec),
                buffers: n.buffers.iter().map(|b| b.to_vec()).collect(),
                num_children: n.num_children,
            })
            .collect(),
    })
}

/// A `List<Int64>` column with one list per row.
fn timers(schema: &SchemaRef, lists: &[Vec<i64>]) -> Result<ArrayRef, String> {
    let Some(sluice_guest_sdk::arrow_schema::DataType::List(item)) =
        schema.fields().last().map(|f| f.data_type().clone())
    else {
        return Err("no timers column".into());
    };
    let mut offsets = vec![0i32];
    let mut values = Vec::new();
    for l in lists {
        values.extend_from_slice(l);
        offsets.push(values.len() as i32);
    }
    Ok(Arc::new(
        ListArray::try_new(
            item,
            sluice_guest_sdk::arrow_buffer::OffsetBuffer::new(offsets.into()),
            Arc::new(Int64Array::from(values)),
            None,
        )
        .map_err(|e| e.to_string())?,
    ))
}

struct Hostile;

impl Guest for Hostile {
    fn init(
        config: String,
        key_schema: Vec<u8>,
        input_schema: Vec<u8>,
        _mode: TimeMode,
    ) -> Result<ProcessorSpec, String> {
        let json: sluice_guest_sdk::serde_json::Value =
            sluice_guest_sdk::serde_json::from_str(&config).unwrap_or_default();
        let key = abi::decode_schema(&key_schema).map_err(|e| e.to_string())?;
        let input = abi::decode_schema(&input_schema).map_err(|e| e.to_string())?;
        CONFIG.set(Some(Config {
            behavior: json["behavior"].as_str().unwrap_or("none").to_owned(),
            key,
            input,
            state: abi::processor_state_schema([("count", abi::StateColumn::Value)]),
        }));
        Ok(ProcessorSpec {
            output_schema: abi::encode_schema(&Schema::empty()),
            state: vec![StateVariable {
                name: "count".into(),
                kind: StateKind::Value,
                encoding: ValueEncoding::Int64,
                ttl_ms: None,
            }],
        })
    }

    fn process(
        ctx: BatchContext,
        keys: BatchResult,
        rows: BatchResult,
        row_ends: Vec<u32>,
        state: BatchResult,
        expired: Vec<ExpiredTimer>,
    ) -> Result<BatchResult, String> {
        CONFIG.with_borrow(|c| {
            let c = c.as_ref().ok_or("called before init")?;
            let keys = receive(&c.key, keys)?;
            let _rows = receive(&c.input, rows)?;
            let state = receive(&c.state, state)?;
            let old = state
                .column(0)
                .as_any()
                .downcast_ref::<BinaryArray>()
                .ok_or("count is not binary")?;
            let mut n = keys.num_rows();
            if c.behavior == "extra-key" {
                n += 1;
            }
            if c.behavior == "timer-loop" && !expired.is_empty() {
                let mut spins: u64 = 0;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            let mut counts = BinaryBuilder::new();
            let mut lists = Vec::new();
            let mut start = 0u32;
            for i in 0..n {
                let end = row_ends.get(i).copied().unwrap_or(start);
                let before = if i < old.len() && old.is_valid(i) {
                    old.value(i).try_into().map(i64::from_le_bytes).unwrap_or(0)
                } else {
                    0
                };
                let count = before + i64::from(end - start);
                start = end;
                if c.behavior == "malformed" {
                    counts.append_value([1u8, 2, 3]);
                } else {
                    counts.append_value(count.to_le_bytes());
                }
                let clock = ctx.watermark_ms.unwrap_or(ctx.processing_time_ms);
                lists.push(match c.behavior.as_str() {
                    "past-timer" => vec![clock],
                    "timer-loop" => vec![clock + 1],
                    _ => Vec::new(),
                });
            }
            let batch = RecordBatch::try_new(
                c.state.clone(),
                vec![Arc::new(counts.finish()), timers(&c.state, &lists)?],
            )
            .map_err(|e| e.to_string())?;
            send(&batch)
        })
    }
}

sluice_guest_sdk::bindings::__export_world!(Hostile with_types_in sluice_guest_sdk::bindings);
