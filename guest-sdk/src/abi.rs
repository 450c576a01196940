//! The Arrow layout that crosses the Wasm boundary (`sluice:pipeline/arrow` in `wit/`), shared
//! by the host and the guests so there is one definition of it.
//!
//! A column is an Arrow `ArrayData` tree. [`flatten`] walks it depth-first into nodes that
//! *borrow* the array's buffers — nothing is copied until the canonical ABI copies each buffer
//! once into the other side's memory. [`unflatten`] rebuilds the tree from received buffers,
//! wrapping them as Arrow buffers without copying (only a buffer that arrives misaligned for
//! its type is copied, by `align_buffers`).

use std::borrow::Cow;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions, make_array};
use arrow_buffer::{BooleanBufferBuilder, Buffer};
use arrow_data::ArrayData;
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};

/// How a keyed processor's state variable is laid out in the state batch (the WIT's
/// `state-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateColumn {
    /// A nullable `Binary` column: one value or none.
    Value,
    /// A `List<Binary>` column: the values in order.
    List,
    /// A `List<Struct<key: Binary, value: Binary>>` column: entries in key order.
    Map,
}

/// The name of the state batch's last column: each key's timers, `List<Int64>`.
pub const TIMERS_COLUMN: &str = "__timers";

/// The schema of a keyed processor's state batch: a column per state variable, in
/// declaration order, then the timers. Host and guest build it from the same declaration.
pub fn processor_state_schema<'a>(
    variables: impl IntoIterator<Item = (&'a str, StateColumn)>,
) -> SchemaRef {
    use arrow_schema::Field;
    use std::sync::Arc;
    let list_of = |item: DataType| DataType::List(Arc::new(Field::new("item", item, false)));
    let mut fields: Vec<Field> = variables
        .into_iter()
        .map(|(name, kind)| match kind {
            StateColumn::Value => Field::new(name, DataType::Binary, true),
            StateColumn::List => Field::new(name, list_of(DataType::Binary), false),
            StateColumn::Map => {
                Field::new(name, list_of(DataType::Struct(map_entry_fields())), false)
            }
        })
        .collect();
    fields.push(Field::new(TIMERS_COLUMN, list_of(DataType::Int64), false));
    Arc::new(Schema::new(fields))
}

/// The fields of a map state's entries.
pub fn map_entry_fields() -> arrow_schema::Fields {
    arrow_schema::Fields::from(vec![
        arrow_schema::Field::new("key", DataType::Binary, false),
        arrow_schema::Field::new("value", DataType::Binary, false),
    ])
}

/// One node, borrowing the buffers of the array it came from.
#[derive(Debug)]
pub struct NodeRef<'a> {
    /// Slots.
    pub len: u32,
    /// Offset of the first slot.
    pub offset: u32,
    /// Null slots.
    pub null_count: u32,
    /// Validity bitmap, if any slot is null: bit `offset + i` is slot `i`. Borrowed, except
    /// for a sliced array whose bitmap starts at another bit than its data.
    pub validity: Option<Cow<'a, [u8]>>,
    /// Data buffers in Arrow's order.
    pub buffers: Vec<&'a [u8]>,
    /// Child nodes following this one.
    pub num_children: u32,
}

/// One received node whose buffers are now owned by this side.
#[derive(Debug)]
pub struct NodeOwned {
    /// Slots.
    pub len: u32,
    /// Offset of the first slot.
    pub offset: u32,
    /// Null slots.
    pub null_count: u32,
    /// Validity bitmap, if any slot is null.
    pub validity: Option<Buffer>,
    /// Data buffers in Arrow's order.
    pub buffers: Vec<Buffer>,
    /// Child nodes following this one.
    pub num_children: u32,
}

fn to_u32(v: usize, what: &str) -> Result<u32, ArrowError> {
    u32::try_from(v).map_err(|_| {
        ArrowError::InvalidArgumentError(format!(
            "{what} {v} does not fit the 32-bit Wasm boundary"
        ))
    })
}

/// Appends the nodes of one array, depth-first.
pub fn flatten<'a>(data: &'a ArrayData, out: &mut Vec<NodeRef<'a>>) -> Result<(), ArrowError> {
    out.push(NodeRef {
        len: to_u32(data.len(), "array length")?,
        offset: to_u32(data.offset(), "array offset")?,
        null_count: to_u32(data.null_count(), "null count")?,
        validity: data.nulls().filter(|n| n.null_count() > 0).map(|n| {
            if n.offset() == data.offset() {
                Cow::Borrowed(n.buffer().as_slice())
            } else {
                // Sliced: re-align the bits to the data's offset (a copy of the bitmap only).
                let mut bits = BooleanBufferBuilder::new(data.offset() + data.len());
                bits.append_n(data.offset(), true);
                bits.append_buffer(n.inner());
                Cow::Owned(bits.finish().into_inner().as_slice().to_vec())
            }
        }),
        buffers: data.buffers().iter().map(|b| b.as_slice()).collect(),
        num_children: to_u32(data.child_data().len(), "child count")?,
    });
    for child in data.child_data() {
        flatten(child, out)?;
    }
    Ok(())
}

/// Flattens every column of a batch. The `ArrayData` values are returned so the borrowed
/// nodes can point into them.
pub fn batch_data(batch: &RecordBatch) -> Vec<ArrayData> {
    batch.columns().iter().map(|c| c.to_data()).collect()
}

/// Flattens the `ArrayData` of each column into nodes.
pub fn flatten_all(columns: &[ArrayData]) -> Result<Vec<NodeRef<'_>>, ArrowError> {
    let mut nodes = Vec::with_capacity(columns.len());
    for c in columns {
        flatten(c, &mut nodes)?;
    }
    Ok(nodes)
}

/// Rebuilds one array of type `data_type` from the next nodes.
///
/// With `validate` the data is checked completely (offsets in bounds, UTF-8, ...): the host
/// does this for everything a guest sends. A guest receiving from the host may skip it.
pub fn unflatten(
    data_type: &DataType,
    nodes: &mut impl Iterator<Item = NodeOwned>,
    validate: bool,
) -> Result<ArrayData, ArrowError> {
    let node = nodes.next().ok_or_else(|| {
        ArrowError::InvalidArgumentError(format!("missing array node for a {data_type} column"))
    })?;
    let child_types: Vec<DataType> = match data_type {
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => {
            vec![f.data_type().clone()]
        }
        DataType::ListView(f) | DataType::LargeListView(f) => vec![f.data_type().clone()],
        DataType::Struct(fields) => fields.iter().map(|f| f.data_type().clone()).collect(),
        DataType::Dictionary(_, values) => vec![values.as_ref().clone()],
        DataType::RunEndEncoded(r, v) => vec![r.data_type().clone(), v.data_type().clone()],
        DataType::Union(fields, _) => fields.iter().map(|(_, f)| f.data_type().clone()).collect(),
        _ => Vec::new(),
    };
    if child_types.len() != node.num_children as usize {
        return Err(ArrowError::InvalidArgumentError(format!(
            "a {data_type} array needs {} child arrays, got {}",
            child_types.len(),
            node.num_children
        )));
    }
    // Arrow's builder asserts (panics) where a validity bitmap is shorter than the slots it
    // covers, before any validation runs: check it here, so a guest's bad node is an error.
    if let Some(validity) = &node.validity {
        let needed = u64::from(node.offset) + u64::from(node.len);
        if (validity.len() as u64) * 8 < needed {
            return Err(ArrowError::InvalidArgumentError(format!(
                "a {data_type} array's validity bitmap has {} bits for offset {} + {} slots",
                validity.len() * 8,
                node.offset,
                node.len
            )));
        }
    }
    let children = child_types
        .iter()
        .map(|t| unflatten(t, nodes, validate))
        .collect::<Result<Vec<_>, _>>()?;
    let builder = ArrayData::builder(data_type.clone())
        .len(node.len as usize)
        .offset(node.offset as usize)
        .null_bit_buffer(node.validity)
        .buffers(node.buffers)
        .child_data(children)
        .align_buffers(true);
    if validate {
        builder.build()
    } else {
        // SAFETY: only used for data the host produced from valid Arrow arrays, passed through
        // the canonical ABI byte for byte.
        unsafe { builder.skip_validation(true) }.build()
    }
}

/// Rebuilds a record batch of `schema` from received nodes.
pub fn to_batch(
    schema: &SchemaRef,
    num_rows: u32,
    nodes: impl IntoIterator<Item = NodeOwned>,
    validate: bool,
) -> Result<RecordBatch, ArrowError> {
    let mut nodes = nodes.into_iter();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| unflatten(f.data_type(), &mut nodes, validate).map(make_array))
        .collect::<Result<_, _>>()?;
    if nodes.next().is_some() {
        return Err(ArrowError::InvalidArgumentError(format!(
            "the batch has more array nodes than its {} columns need",
            schema.fields().len()
        )));
    }
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(num_rows as usize)),
    )
}

/// Encodes a schema as an Arrow IPC schema message.
pub fn encode_schema(schema: &Schema) -> Vec<u8> {
    let generator = arrow_ipc::writer::IpcDataGenerator::default();
    let mut tracker = arrow_ipc::writer::DictionaryTracker::new(false);
    generator
        .schema_to_bytes_with_dictionary_tracker(
            schema,
            &mut tracker,
            &arrow_ipc::writer::IpcWriteOptions::default(),
        )
        .ipc_message
}

/// Decodes a schema encoded by [`encode_schema`] (or any Arrow library's IPC schema message).
pub fn decode_schema(bytes: &[u8]) -> Result<SchemaRef, ArrowError> {
    arrow_ipc::convert::try_schema_from_flatbuffer_bytes(bytes).map(std::sync::Arc::new)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::types::Int32Type;
    use arrow_array::{Array, Int64Array, ListArray, StringArray, StructArray};
    use arrow_schema::{Field, Fields};

    use super::*;

    fn round_trip(batch: &RecordBatch) -> RecordBatch {
        let data = batch_data(batch);
        let nodes = flatten_all(&data).unwrap();
        let owned: Vec<NodeOwned> = nodes
            .iter()
            .map(|n| NodeOwned {
                len: n.len,
                offset: n.offset,
                null_count: n.null_count,
                validity: n.validity.as_deref().map(Buffer::from),
                buffers: n.buffers.iter().map(|b| Buffer::from(*b)).collect(),
                num_children: n.num_children,
            })
            .collect();
        let schema = decode_schema(&encode_schema(&batch.schema())).unwrap();
        to_batch(&schema, batch.num_rows() as u32, owned, true).unwrap()
    }

    #[test]
    fn flat_nested_sliced_and_null_columns_survive_the_trip() {
        let strings = StringArray::from(vec![Some("seoul"), None, Some("busan"), Some("daegu")]);
        let ints = Int64Array::from(vec![1, 2, 3, 4]);
        let lists = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![]),
            Some(vec![Some(3), None]),
        ]);
        let structs = StructArray::from(vec![(
            Arc::new(Field::new("n", DataType::Int64, false)),
            Arc::new(Int64Array::from(vec![10, 20, 30, 40])) as ArrayRef,
        )]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("i", DataType::Int64, false),
            Field::new("l", lists.data_type().clone(), true),
            Field::new(
                "st",
                DataType::Struct(Fields::from(vec![Field::new("n", DataType::Int64, false)])),
                false,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(strings),
                Arc::new(ints),
                Arc::new(lists),
                Arc::new(structs),
            ],
        )
        .unwrap();
        assert_eq!(round_trip(&batch), batch);
        let sliced = batch.slice(1, 2);
        assert_eq!(round_trip(&sliced), sliced);
    }

    #[test]
    fn a_bad_batch_is_an_error_not_a_panic() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        // Offsets point past the end of the values buffer.
        let bad = NodeOwned {
            len: 1,
            offset: 0,
            null_count: 0,
            validity: None,
            buffers: vec![Buffer::from_vec(vec![0i32, 100]), Buffer::from(&b"abc"[..])],
            num_children: 0,
        };
        assert!(to_batch(&schema, 1, vec![bad], true).is_err());
        assert!(to_batch(&schema, 1, Vec::new(), true).is_err());
    }

    /// Found by the guest fuzz target (fuzz/regressions/guest): a validity bitmap shorter
    /// than offset + slots made Arrow's builder panic before validation.
    #[test]
    fn a_short_validity_bitmap_is_an_error_not_a_panic() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let short = NodeOwned {
            len: 12,
            offset: 270_926_081,
            null_count: 1,
            validity: Some(Buffer::from_vec(Vec::<u8>::new())),
            buffers: vec![Buffer::from_vec(vec![0i64; 12])],
            num_children: 0,
        };
        let e = to_batch(&schema, 12, vec![short], true).unwrap_err();
        assert!(e.to_string().contains("validity bitmap has 0 bits"), "{e}");
    }
}
