//! Schemas as a pipeline writes them: Spark's DDL strings (`"city STRING, n BIGINT"`).
//!
//! A Spark user declares a file source's schema with `.schema("a STRING, b INT")`; the same
//! string works in a Sluice pipeline. Every field is nullable, as in Spark's file sources,
//! because a missing JSON key or an empty CSV cell is a null, not an error.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The time zone Sluice stamps on timestamp columns: event times are instants.
pub const UTC: &str = "+00:00";

/// Arrow type used for Spark's `TIMESTAMP`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

/// Decodes an Arrow IPC schema message we did not write (a guest's declared schema, a
/// checkpoint's key schema): arrow-ipc unwraps missing parts of a malformed message, so its
/// reader runs guarded and such a message is an error too.
pub fn decode_ipc_schema(bytes: &[u8]) -> Result<SchemaRef, String> {
    match crate::untrusted::guarded(|| sluice_guest_sdk::abi::decode_schema(bytes)) {
        Ok(Ok(schema)) => Ok(schema),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!(
            "a malformed Arrow IPC schema message (a required part is missing: {panic})"
        )),
    }
}

/// Parses a DDL schema string into an Arrow schema.
///
/// Supported types: STRING, BOOLEAN, TINYINT/BYTE, SMALLINT/SHORT, INT/INTEGER,
/// BIGINT/LONG, FLOAT/REAL, DOUBLE, DATE, TIMESTAMP, BINARY. Names may be quoted with
/// backticks.
pub fn parse_ddl(ddl: &str) -> Result<SchemaRef, String> {
    let mut fields = Vec::new();
    for (i, part) in ddl.split(',').enumerate() {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("column {} is empty (a stray comma?)", i + 1));
        }
        let (name, ty) = split_name_type(part).ok_or_else(|| {
            format!("'{part}' should be a column name and a type, like 'city STRING'")
        })?;
        let data_type = parse_type(ty).ok_or_else(|| {
            format!(
                "unknown type '{ty}' for column '{name}'; use STRING, BOOLEAN, INT, BIGINT, FLOAT, DOUBLE, DATE, TIMESTAMP or BINARY"
            )
        })?;
        if fields.iter().any(|f: &Field| f.name() == name) {
            return Err(format!("column '{name}' is declared twice"));
        }
        fields.push(Field::new(name, data_type, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

fn split_name_type(part: &str) -> Option<(&str, &str)> {
    if let Some(rest) = part.strip_prefix('`') {
        let end = rest.find('`')?;
        let ty = rest[end + 1..].trim();
        (!ty.is_empty()).then_some((&rest[..end], ty))
    } else {
        let (name, ty) = part.split_once(char::is_whitespace)?;
        Some((name, ty.trim()))
    }
}

fn parse_type(ty: &str) -> Option<DataType> {
    Some(match ty.to_ascii_uppercase().as_str() {
        "STRING" | "VARCHAR" | "TEXT" => DataType::Utf8,
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TINYINT" | "BYTE" => DataType::Int8,
        "SMALLINT" | "SHORT" => DataType::Int16,
        "INT" | "INTEGER" => DataType::Int32,
        "BIGINT" | "LONG" => DataType::Int64,
        "FLOAT" | "REAL" => DataType::Float32,
        "DOUBLE" => DataType::Float64,
        "DATE" => DataType::Date32,
        "TIMESTAMP" => timestamp_type(),
        "BINARY" => DataType::Binary,
        _ => return None,
    })
}

/// The column names of a schema, comma separated, for error messages.
pub fn column_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Returns the schema with every field made nullable (inferred schemas may say otherwise).
pub fn all_nullable(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

/// arrow-json's writer, writing values as Spark's JSON does where the two differ: BINARY is
/// a base64 string (arrow-json writes hex). Every JSON the engine writes for users (file
/// sink, Kafka values, memory tables) goes through it.
pub fn spark_json() -> arrow_json::WriterBuilder {
    arrow_json::WriterBuilder::new().with_encoder_factory(Arc::new(SparkJsonEncoders))
}

/// The rows of `batch` as JSON lines, as [`spark_json`] writes them.
pub fn json_lines<W: std::io::Write>(
    out: W,
) -> arrow_json::Writer<W, arrow_json::writer::LineDelimited> {
    spark_json().build::<_, arrow_json::writer::LineDelimited>(out)
}

#[derive(Debug)]
struct SparkJsonEncoders;

impl arrow_json::EncoderFactory for SparkJsonEncoders {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a arrow_schema::FieldRef,
        array: &'a dyn arrow_array::Array,
        _options: &'a arrow_json::writer::EncoderOptions,
    ) -> std::result::Result<
        Option<arrow_json::writer::NullableEncoder<'a>>,
        arrow_schema::ArrowError,
    > {
        use arrow_array::cast::AsArray;
        let encoder: Box<dyn arrow_json::Encoder + 'a> = match array.data_type() {
            DataType::Binary => Box::new(Base64Encoder(array.as_binary::<i32>())),
            DataType::LargeBinary => Box::new(Base64Encoder(array.as_binary::<i64>())),
            _ => return Ok(None),
        };
        Ok(Some(arrow_json::writer::NullableEncoder::new(
            encoder,
            array.nulls().cloned(),
        )))
    }
}

/// A binary value as a JSON string of its standard base64 (no characters JSON must escape).
struct Base64Encoder<'a, O: arrow_array::OffsetSizeTrait>(&'a arrow_array::GenericBinaryArray<O>);

impl<O: arrow_array::OffsetSizeTrait> arrow_json::Encoder for Base64Encoder<'_, O> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        use base64::Engine;
        out.push(b'"');
        let value = self.0.value(idx);
        let start = out.len();
        out.resize(
            start + base64::encoded_len(value.len(), true).unwrap_or(0),
            0,
        );
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(value, &mut out[start..])
            .unwrap_or(0);
        out.truncate(start + written);
        out.push(b'"');
    }
}

/// A batch's rows as JSON objects, as [`spark_json`] writes them, in one buffer (not a
/// `String` per row): row `i` ends at `ends[i]`, its newline. What the Kafka sink writes as
/// values and the Elasticsearch sink as documents.
pub struct JsonRows {
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl JsonRows {
    /// Each row of `batch` without the `leave_out` columns.
    pub fn of(
        batch: &arrow_array::RecordBatch,
        leave_out: &[usize],
    ) -> std::result::Result<JsonRows, String> {
        let keep: Vec<usize> = (0..batch.num_columns())
            .filter(|i| !leave_out.contains(i))
            .collect();
        let rows = batch.project(&keep).map_err(|e| e.to_string())?;
        let mut w = json_lines(Vec::new());
        w.write(&rows)
            .and_then(|()| w.finish())
            .map_err(|e| e.to_string())?;
        let mut text = w.into_inner();
        if keep.is_empty() || text.is_empty() {
            // A batch without columns writes nothing: each row is an empty object.
            text = b"{}\n".repeat(batch.num_rows());
        }
        // One line per row: JSON escapes a newline inside a string, so each '\n' ends a row.
        let ends: Vec<usize> = memchr::memchr_iter(b'\n', &text).collect();
        if ends.len() != batch.num_rows() {
            return Err(format!(
                "{} rows became {} JSON lines",
                batch.num_rows(),
                ends.len()
            ));
        }
        Ok(JsonRows { text, ends })
    }

    /// The bytes of every row together (newlines included).
    pub fn len_bytes(&self) -> usize {
        self.text.len()
    }

    /// Row `i`'s JSON object, without its newline.
    pub fn row(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] + 1 };
        &self.text[start..self.ends[i]]
    }
}

/// The rows of `batch` as JSON objects, as [`spark_json`] writes them.
pub fn rows_as_json(
    batch: &arrow_array::RecordBatch,
) -> std::result::Result<Vec<serde_json::Map<String, serde_json::Value>>, arrow_schema::ArrowError>
{
    let mut writer = spark_json().build::<_, arrow_json::writer::JsonArray>(Vec::new());
    writer.write(batch)?;
    writer.finish()?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        // A batch of only rows with no columns writes nothing at all.
        return Ok(vec![serde_json::Map::new(); batch.num_rows()]);
    }
    serde_json::from_slice(&bytes).map_err(|e| arrow_schema::ArrowError::JsonError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_is_written_as_base64_as_spark_does() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("b", DataType::Binary, true),
            Field::new("l", DataType::LargeBinary, true),
        ]));
        let batch = arrow_array::RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow_array::BinaryArray::from_opt_vec(vec![
                    Some(b"hello"),
                    None,
                    Some(b""),
                ])),
                Arc::new(arrow_array::LargeBinaryArray::from_opt_vec(vec![
                    Some(&[0xff, 0xfe, 0x00][..]),
                    Some(b"a"),
                    None,
                ])),
            ],
        )
        .unwrap();
        let mut w = json_lines(Vec::new());
        w.write(&batch).unwrap();
        w.finish().unwrap();
        assert_eq!(
            String::from_utf8(w.into_inner()).unwrap(),
            "{\"b\":\"aGVsbG8=\",\"l\":\"//4A\"}\n{\"l\":\"YQ==\"}\n{\"b\":\"\"}\n"
        );
    }

    #[test]
    fn ddl_parses_spark_types() {
        let s = parse_ddl("city STRING, `event time` TIMESTAMP, n bigint, ok BOOLEAN").unwrap();
        assert_eq!(s.field(0).data_type(), &DataType::Utf8);
        assert_eq!(s.field(1).name(), "event time");
        assert_eq!(s.field(1).data_type(), &timestamp_type());
        assert_eq!(s.field(2).data_type(), &DataType::Int64);
        assert!(s.fields().iter().all(|f| f.is_nullable()));
    }

    #[test]
    fn ddl_errors_name_the_column() {
        assert!(
            parse_ddl("a STRNG")
                .unwrap_err()
                .contains("'STRNG' for column 'a'")
        );
        assert!(
            parse_ddl("a INT,,b INT")
                .unwrap_err()
                .contains("column 2 is empty")
        );
        assert!(
            parse_ddl("a INT, a INT")
                .unwrap_err()
                .contains("declared twice")
        );
        assert!(parse_ddl("justaname").is_err());
    }
}
