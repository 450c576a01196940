//! What a guest hands the host, decoded as the host decodes it: IPC schema messages, batches
//! as array nodes (checked against the schema the host expects), the rows of `emit-rows`
//! (selection bitmap, column sources, computed columns), and a keyed processor's returned
//! state (values, lists, maps and timers) written as stored state. The guest is hostile by
//! assumption: everything must end in an error, never a panic or an unbounded allocation.
#![no_main]

use std::sync::Arc;

use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, ListArray, RecordBatch, StringArray};
use arrow_buffer::Buffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use sluice::operators::processor::key_state::{RowBuffers, StateBatchReader, state_schema};
use sluice::wasm::bindings::transformer::sluice::pipeline::arrow::{ArrayNodeResult, BatchResult};
use sluice::wasm::bindings::transformer::sluice::pipeline::rows::ColumnSource;
use sluice::wasm::processor::{StateKind, StateVariable, ValueEncoding};
use sluice_guest_sdk::abi::NodeOwned;

/// Schemas a guest's batches are checked against.
fn schemas() -> Vec<SchemaRef> {
    let f = |name: &str, t: DataType| Field::new(name, t, true);
    let struct_type = DataType::Struct(Fields::from(vec![
        f("a", DataType::Int64),
        f("b", DataType::Utf8),
    ]));
    let map_type = DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", DataType::Utf8, false),
                f("value", DataType::Int64),
            ])),
            false,
        )),
        false,
    );
    [
        vec![f("n", DataType::Int64)],
        vec![f("s", DataType::Utf8), f("b", DataType::Binary)],
        vec![
            f("ok", DataType::Boolean),
            f("x", DataType::Float64),
            f("d", DataType::Date32),
        ],
        vec![f("l", DataType::List(Arc::new(f("item", DataType::Int64))))],
        vec![f("st", struct_type)],
        vec![f("m", map_type)],
        vec![
            f(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ),
            f("dec", DataType::Decimal128(10, 2)),
        ],
        vec![
            f("big", DataType::LargeUtf8),
            f("fixed", DataType::FixedSizeBinary(4)),
        ],
    ]
    .into_iter()
    .map(|fields| Arc::new(Schema::new(fields)))
    .collect()
}

/// A count: small mostly, anything sometimes (a guest may claim four billion slots).
fn count(u: &mut Unstructured, small: u32) -> Result<u32> {
    if u.ratio(1, 16)? {
        u.arbitrary()
    } else {
        u.int_in_range(0..=small)
    }
}

fn bytes(u: &mut Unstructured, max: usize) -> Result<Vec<u8>> {
    let n = u.int_in_range(0..=max)?;
    Ok(u.bytes(n)?.to_vec())
}

fn node(u: &mut Unstructured) -> Result<(u32, u32, u32, Option<Vec<u8>>, Vec<Vec<u8>>, u32)> {
    let len = count(u, 40)?;
    let offset = count(u, 4)?;
    let null_count = count(u, 8)?;
    let validity = if u.arbitrary()? {
        Some(bytes(u, 16)?)
    } else {
        None
    };
    let mut buffers = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        buffers.push(bytes(u, 400)?);
    }
    Ok((len, offset, null_count, validity, buffers, count(u, 3)?))
}

fn nodes(u: &mut Unstructured) -> Result<Vec<NodeOwned>> {
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(0..=8)? {
        let (len, offset, null_count, validity, buffers, num_children) = node(u)?;
        out.push(NodeOwned {
            len,
            offset,
            null_count,
            validity: validity.map(Buffer::from_vec),
            buffers: buffers.into_iter().map(Buffer::from_vec).collect(),
            num_children,
        });
    }
    Ok(out)
}

fn batch_result(u: &mut Unstructured) -> Result<BatchResult> {
    let num_rows = count(u, 12)?;
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(0..=8)? {
        let (len, offset, null_count, validity, buffers, num_children) = node(u)?;
        out.push(ArrayNodeResult {
            len,
            offset,
            null_count,
            validity,
            buffers,
            num_children,
        });
    }
    Ok(BatchResult {
        num_rows,
        nodes: out,
    })
}

/// The host's input batch an `emit-rows` call refers to.
fn input() -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from_iter(
        (0..10).map(|i| (i % 3 != 0).then_some(i)),
    ));
    let names: ArrayRef = Arc::new(StringArray::from_iter(
        (0..10).map(|i| (i % 4 != 0).then(|| format!("name-{i}"))),
    ));
    let lists: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
        (0..10).map(|i| (i % 5 != 0).then(|| (0..i).map(Some).collect::<Vec<_>>())),
    ));
    RecordBatch::try_from_iter([("id", ids), ("name", names), ("l", lists)]).unwrap()
}

fn state_variables() -> Vec<StateVariable> {
    let v = |name: &str, kind, encoding, ttl_ms| StateVariable {
        name: name.into(),
        kind,
        encoding,
        ttl_ms,
    };
    vec![
        v("count", StateKind::Value, ValueEncoding::Int64, Some(1000)),
        v("events", StateKind::List, ValueEncoding::Utf8, None),
        v("seen", StateKind::Map, ValueEncoding::Json, None),
        v("raw", StateKind::Value, ValueEncoding::Bytes, Some(5)),
    ]
}

fn run(u: &mut Unstructured) -> Result<()> {
    match u.int_in_range(0..=3u8)? {
        // An IPC schema message (a guest's declared output schema).
        0 => {
            let _ = sluice::schema::decode_ipc_schema(u.bytes(u.len())?);
        }
        // A batch against a schema the host expects.
        1 => {
            let all = schemas();
            let schema = &all[u.choose_index(all.len())?];
            let num_rows = count(u, 12)?;
            let _ = sluice::wasm::batch_from_nodes(schema, num_rows, nodes(u)?);
        }
        // emit-rows: selection, column sources and computed columns over the input.
        2 => {
            let input = input();
            let all = schemas();
            let mut output = all[u.choose_index(all.len())?].fields().to_vec();
            if u.arbitrary()? {
                output = input.schema().fields().to_vec();
            }
            let schema = Arc::new(Schema::new(output));
            let selection = if u.arbitrary()? {
                Some(bytes(u, 3)?)
            } else {
                None
            };
            let mut columns = Vec::new();
            for _ in 0..u.int_in_range(0..=4)? {
                columns.push(if u.arbitrary()? {
                    ColumnSource::Input(count(u, 4)?)
                } else {
                    ColumnSource::Computed
                });
            }
            let computed = if u.arbitrary()? {
                Some(batch_result(u)?)
            } else {
                None
            };
            if let Ok(predicate) =
                sluice::wasm::transform::selection_predicate(selection, input.num_rows())
            {
                let _ = sluice::wasm::transform::assemble_rows(
                    &schema,
                    &input,
                    predicate.as_ref(),
                    &columns,
                    computed,
                );
            }
        }
        // A keyed processor's state batch, written row by row as stored state.
        _ => {
            let variables = state_variables();
            let schema = state_schema(&variables);
            let num_rows = count(u, 6)?;
            let Ok(batch) = sluice::wasm::batch_from_nodes(&schema, num_rows, nodes(u)?) else {
                return Ok(());
            };
            let Some(reader) = StateBatchReader::new(&variables, &batch) else {
                return Ok(());
            };
            let mut buf = RowBuffers::default();
            for row in 0..batch.num_rows() {
                let _ = reader.write_row(row, None, 1_000, 1 << 16, &mut buf);
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
