//! Spark's `from_json(col("value").cast("string"), schema).select("data.*")` as a step: the
//! JSON objects in a string or binary `value` column (a Kafka value, a text file's lines)
//! become the typed columns of the schema in the step's config.
//!
//! ```toml
//! [[query.inputs.clicks.transform]]
//! module = "modules/from_json.wasm"
//! config = { schema = "ad_id BIGINT, click_time TIMESTAMP" }
//! ```
//!
//! Types: STRING, BIGINT, INT, DOUBLE, FLOAT, BOOLEAN, TIMESTAMP (RFC 3339 text), DATE. A
//! missing field is null; a malformed object fails the batch with its row.

use sluice_guest_sdk::arrow_array::BinaryArray;
use sluice_guest_sdk::arrow_schema::TimeUnit;
use sluice_guest_sdk::prelude::*;

struct FromJson {
    schema: SchemaRef,
}

/// Parses `name TYPE, name TYPE, ...`.
fn parse_schema(ddl: &str) -> Result<SchemaRef, Error> {
    let mut fields = Vec::new();
    for column in ddl.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let mut parts = column.split_whitespace();
        let (Some(name), Some(ty), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("config.schema: '{column}' is not 'name TYPE'").into());
        };
        let data_type = match ty.to_ascii_uppercase().as_str() {
            "STRING" | "VARCHAR" => DataType::Utf8,
            "BIGINT" | "LONG" => DataType::Int64,
            "INT" | "INTEGER" => DataType::Int32,
            "DOUBLE" => DataType::Float64,
            "FLOAT" => DataType::Float32,
            "BOOLEAN" => DataType::Boolean,
            "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            "DATE" => DataType::Date32,
            other => {
                return Err(
                    format!("config.schema: unknown type '{other}' for column '{name}'").into(),
                );
            }
        };
        fields.push(Field::new(name, data_type, true));
    }
    if fields.is_empty() {
        return Err(
            "config.schema is empty; give the columns, e.g. \"id BIGINT, at TIMESTAMP\"".into(),
        );
    }
    Ok(Arc::new(Schema::new(fields)))
}

impl Transform for FromJson {
    fn init(config: &Config, input: SchemaRef) -> Result<Self, Error> {
        match input.field_with_name("value").map(|f| f.data_type()) {
            Ok(DataType::Utf8 | DataType::Binary) => {}
            _ => return Err("the input needs a string or binary column `value`".into()),
        }
        let ddl = config["schema"]
            .as_str()
            .ok_or("config needs schema = \"name TYPE, ...\"")?;
        Ok(FromJson {
            schema: parse_schema(ddl)?,
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
        let value = batch.column_by_name("value").ok_or("no `value` column")?;
        let strings: StringArray = match value.as_any().downcast_ref::<BinaryArray>() {
            Some(bytes) => bytes
                .iter()
                .map(|b| b.map(|b| String::from_utf8_lossy(b).into_owned()))
                .collect(),
            None => value.as_string::<i32>().clone(),
        };
        out.emit(&json::from_json(&strings, self.schema.clone())?)
    }
}

export_transform!(FromJson);
