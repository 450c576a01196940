//! What an operator's state is made of, written beside it (`state/<operator>/layout.json`)
//! so the state can be read back without the pipeline or its modules (`sluice state show`):
//! the key columns as an Arrow IPC schema (hex), and what the operator adds (its
//! aggregates, its variables). Keys are stored in Arrow's row format; [`keys_as_json`]
//! turns them back into columns.

use arrow_row::{RowConverter, SortField};
use arrow_schema::{Schema, SchemaRef};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::storage::Location;
use sluice_guest_sdk::abi;

/// The layout file of `operator` under `checkpoint`.
pub fn file(checkpoint: &Location, operator: &str) -> Location {
    checkpoint.join("state").join(operator).join("layout.json")
}

/// Writes `layout` (atomically) for `operator`.
pub fn write(checkpoint: &Location, operator: &str, layout: &Value) -> Result<()> {
    let path = file(checkpoint, operator);
    let bytes = serde_json::to_vec_pretty(layout).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    path.write(bytes)
}

/// Reads `operator`'s layout, if one was written.
pub fn read(checkpoint: &Location, operator: &str) -> Result<Option<Value>> {
    let path = file(checkpoint, operator);
    match path.read()? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!("unreadable state layout: {e}"),
            }),
        None => Ok(None),
    }
}

/// An error about `operator`'s state, naming its layout file.
pub fn corrupt(checkpoint: &Location, operator: &str, message: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: file(checkpoint, operator).to_path_buf(),
        message: message.into(),
    }
}

/// `operator`'s layout and the key schema in it (`keySchema`), or an error naming the file.
pub fn read_with_keys(checkpoint: &Location, operator: &str) -> Result<(Value, SchemaRef)> {
    let spec = read(checkpoint, operator)?.ok_or_else(|| {
        corrupt(
            checkpoint,
            operator,
            "no layout.json (state written by an older Sluice)",
        )
    })?;
    let schema = schema_from_hex(spec["keySchema"].as_str().unwrap_or_default())
        .map_err(|m| corrupt(checkpoint, operator, m))?;
    Ok((spec, schema))
}

/// A schema as hex text (its IPC message), for a layout file.
pub fn schema_hex(schema: &Schema) -> String {
    abi::encode_schema(schema)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The schema [`schema_hex`] wrote.
pub fn schema_from_hex(hex: &str) -> std::result::Result<SchemaRef, String> {
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or("the key schema is not hex")?;
    crate::schema::decode_ipc_schema(&bytes)
}

/// Row-format keys of `schema`'s columns as JSON objects, one per key.
pub fn keys_as_json<'a>(
    schema: &SchemaRef,
    keys: impl Iterator<Item = &'a [u8]>,
) -> std::result::Result<Vec<Map<String, Value>>, String> {
    let keys: Vec<&[u8]> = keys.collect();
    if schema.fields().is_empty() {
        return Ok(vec![Map::new(); keys.len()]);
    }
    let converter = RowConverter::new(
        schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )
    .map_err(|e| e.to_string())?;
    let columns = super::row_keys::decode(&converter, keys.iter().copied())?;
    let batch = arrow_array::RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(keys.len())),
    )
    .map_err(|e| e.to_string())?;
    crate::schema::rows_as_json(&batch).map_err(|e| e.to_string())
}

/// A timestamp in µs as RFC 3339 text.
pub fn iso_us(us: i64) -> Value {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::from(us))
}
