//! `from_json(text, 'a STRING, b DOUBLE')` and `to_json(struct)`, as Spark has them; neither is
//! among DataFusion's functions, so they are scalar functions of ours over arrow-json (the
//! reader and writer the file and Kafka connectors already use).
//!
//! `from_json` parses with Spark's PERMISSIVE rules: a value that is not JSON of that shape
//! gives a struct whose fields are all null (the batch goes on); a null input gives null.
//! `to_json` writes as every JSON Sluice writes (`schema::spark_json`: BINARY as base64).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, StructArray};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field, FieldRef, Fields, SchemaRef};
use datafusion_common::{Result, ScalarValue, exec_err, plan_err};
use datafusion_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `from_json(text, schema)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct FromJson {
    signature: Signature,
}

impl FromJson {
    pub(super) fn new() -> FromJson {
        FromJson {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// The struct type a `from_json` schema literal names.
fn struct_of(schema: Option<&ScalarValue>) -> Result<Fields> {
    let ddl = match schema {
        Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s))) => s,
        Some(ScalarValue::Utf8View(Some(s))) => s,
        _ => {
            return plan_err!(
                "from_json needs its schema as a string literal, e.g. from_json(value, 'id BIGINT, city STRING')"
            );
        }
    };
    match crate::schema::parse_ddl(ddl) {
        Ok(schema) => Ok(crate::schema::all_nullable(&schema).fields().clone()),
        Err(e) => plan_err!("from_json's schema '{ddl}': {e}"),
    }
}

impl ScalarUDFImpl for FromJson {
    fn name(&self) -> &str {
        "from_json"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        plan_err!("from_json's type comes from its schema argument")
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let fields = struct_of(args.scalar_arguments.get(1).copied().flatten())?;
        Ok(Arc::new(Field::new(
            "from_json",
            DataType::Struct(fields),
            true,
        )))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::Struct(fields) = args.return_field.data_type() else {
            return exec_err!("from_json: no struct type planned");
        };
        let text = args.args[0].clone().into_array(args.number_rows)?;
        let text = arrow_cast::cast(&text, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let schema: SchemaRef = Arc::new(arrow_schema::Schema::new(fields.clone()));
        Ok(ColumnarValue::Array(Arc::new(parse(text, &schema)?)))
    }
}

/// Each value of `text` parsed as one JSON object of `schema`.
fn parse(text: &StringArray, schema: &SchemaRef) -> Result<StructArray> {
    // All at once when every value parses; one by one (a bad value's fields null) otherwise.
    let mut whole = Vec::with_capacity(text.value_data().len() + text.len());
    for v in text.iter() {
        whole.extend_from_slice(v.map_or(b"{}".as_ref(), |s| s.as_bytes()));
        whole.push(b'\n');
    }
    let batch = match decode(schema, &whole, text.len()) {
        Some(b) => b,
        None => {
            let rows: Vec<RecordBatch> = text
                .iter()
                .map(|v| {
                    decode(schema, v.unwrap_or("{}").as_bytes(), 1)
                        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()))
                })
                .map(|b| match b.num_rows() {
                    1 => Ok(b),
                    _ => null_row(schema),
                })
                .collect::<Result<_>>()?;
            arrow_select::concat::concat_batches(schema, &rows)?
        }
    };
    let nulls = text
        .nulls()
        .cloned()
        .map(|n| NullBuffer::new(n.into_inner()));
    Ok(StructArray::try_new(
        schema.fields().clone(),
        batch.columns().to_vec(),
        nulls,
    )?)
}

/// A row of nulls.
fn null_row(schema: &SchemaRef) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| arrow_array::new_null_array(f.data_type(), 1))
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// `rows` JSON objects of `schema`, or `None` if any does not parse as one (or the count is
/// off: a value holding two objects).
fn decode(schema: &SchemaRef, text: &[u8], rows: usize) -> Option<RecordBatch> {
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.max(1))
        // Spark reads a number or boolean into a STRING field as its text.
        .with_coerce_primitive(true)
        .build_decoder()
        .ok()?;
    let mut at = 0;
    while at < text.len() {
        let read = decoder.decode(&text[at..]).ok()?;
        if read == 0 {
            break;
        }
        at += read;
    }
    let batch = decoder.flush().ok()??;
    (batch.num_rows() == rows).then_some(batch)
}

/// `to_json(struct)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct ToJson {
    signature: Signature,
}

impl ToJson {
    pub(super) fn new() -> ToJson {
        ToJson {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToJson {
    fn name(&self) -> &str {
        "to_json"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(DataType::Struct(_)) => Ok(DataType::Utf8),
            other => plan_err!(
                "to_json takes a struct (e.g. to_json(named_struct('city', city, 'n', n))), not {}",
                other.map_or("nothing".to_owned(), |t| t.to_string())
            ),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let value = args.args[0].clone().into_array(args.number_rows)?;
        let Some(structs) = value.as_struct_opt() else {
            return exec_err!("to_json takes a struct");
        };
        let batch = RecordBatch::from(structs.clone());
        let rows = crate::schema::JsonRows::of(&batch, &[])
            .map_err(|e| datafusion_common::DataFusionError::Execution(format!("to_json: {e}")))?;
        // Straight from the writer's one buffer: no String per row.
        let mut out =
            arrow_array::builder::StringBuilder::with_capacity(structs.len(), rows.len_bytes());
        for i in 0..structs.len() {
            match (structs.is_valid(i), std::str::from_utf8(rows.row(i))) {
                (true, Ok(text)) => out.append_value(text),
                (true, Err(e)) => return exec_err!("to_json wrote invalid UTF-8: {e}"),
                (false, _) => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
