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
/// Spark's types: STRING (VARCHAR(n), CHAR(n)), BOOLEAN, TINYINT/BYTE, SMALLINT/SHORT,
/// INT/INTEGER, BIGINT/LONG, FLOAT/REAL, DOUBLE, DECIMAL(p, s) (DEC, NUMERIC; DECIMAL alone is
/// DECIMAL(10, 0), as in Spark), DATE, TIMESTAMP, BINARY, and the nested ARRAY<T>, MAP<K, V>
/// and STRUCT<name: T, …> (the colon is optional). Names may be quoted with backticks.
///
/// Written here rather than borrowed from sqlparser: its type grammar differs per dialect and
/// DataFusion maps some names (TIMESTAMP) to other Arrow types than Spark's.
pub fn parse_ddl(ddl: &str) -> Result<SchemaRef, String> {
    let fields = parse_fields(ddl, "column").map_err(|e| {
        if e.starts_with("unknown type") {
            format!("{e}; use {TYPES}")
        } else {
            e
        }
    })?;
    Ok(Arc::new(Schema::new(fields)))
}

/// `name type, name type, …`: the columns of a schema (`what` = "column") or the fields of a
/// STRUCT (`what` = "field"); a colon may stand between a name and its type.
fn parse_fields(ddl: &str, what: &str) -> Result<Vec<Field>, String> {
    let mut fields: Vec<Field> = Vec::new();
    for (i, part) in split_top_level(ddl)?.into_iter().enumerate() {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("{what} {} is empty (a stray comma?)", i + 1));
        }
        let (name, ty) = split_name_type(part).ok_or_else(|| {
            format!("'{part}' should be a {what} name and a type, like 'city STRING'")
        })?;
        let data_type = parse_type(ty).map_err(|e| format!("{e} for {what} '{name}'"))?;
        if fields.iter().any(|f| f.name() == name) {
            return Err(format!("{what} '{name}' is declared twice"));
        }
        fields.push(Field::new(name, data_type, true));
    }
    Ok(fields)
}

/// Splits at the commas outside `<…>` and `(…)`, so `a DECIMAL(10,2), m MAP<STRING, INT>`
/// is two parts.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    // The open brackets, with where each is.
    let mut depth: Vec<(char, usize)> = Vec::new();
    let mut start = 0;
    let mut in_backticks = false;
    for (at, c) in text.char_indices() {
        match c {
            '`' => in_backticks = !in_backticks,
            _ if in_backticks => {}
            '<' | '(' => depth.push((c, at)),
            '>' | ')' => {
                let open = if c == '>' { '<' } else { '(' };
                if depth.pop().map(|(c, _)| c) != Some(open) {
                    return Err(format!("'{c}' at position {} closes nothing", at + 1));
                }
            }
            ',' if depth.is_empty() => {
                parts.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if let Some((open, at)) = depth.last() {
        return Err(format!("'{open}' at position {} is never closed", at + 1));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn split_name_type(part: &str) -> Option<(&str, &str)> {
    let (name, ty) = if let Some(rest) = part.strip_prefix('`') {
        let end = rest.find('`')?;
        (&rest[..end], &rest[end + 1..])
    } else {
        let end = part.find(|c: char| c.is_whitespace() || c == ':')?;
        (&part[..end], &part[end..])
    };
    let ty = ty.trim_start();
    let ty = ty.strip_prefix(':').unwrap_or(ty).trim();
    (!ty.is_empty() && !name.is_empty()).then_some((name, ty))
}

/// The types a DDL string may name, for error messages.
const TYPES: &str = "STRING, BOOLEAN, INT, BIGINT, FLOAT, DOUBLE, DECIMAL(p, s), DATE, TIMESTAMP, BINARY, ARRAY<T>, MAP<K, V> or STRUCT<name: T>";

/// The largest DECIMAL precision, Spark's and Arrow's Decimal128's.
const MAX_DECIMAL_PRECISION: u8 = 38;

fn parse_type(ty: &str) -> Result<DataType, String> {
    let unknown = || format!("unknown type '{}'", ty.trim());
    // The name, then what its `<…>` or `(…)` hold.
    let (name, args) = match ty.find(['<', '(']) {
        None => (ty.trim(), None),
        Some(open) => {
            let close = if ty.as_bytes()[open] == b'<' {
                '>'
            } else {
                ')'
            };
            let inner = ty[open + 1..]
                .trim_end()
                .strip_suffix(close)
                .ok_or_else(unknown)?;
            (ty[..open].trim(), Some((close, inner)))
        }
    };
    let name = name.to_ascii_uppercase();
    Ok(match (name.as_str(), args) {
        ("ARRAY", Some(('>', inner))) => {
            DataType::List(Arc::new(Field::new("item", parse_type(inner)?, true)))
        }
        ("MAP", Some(('>', inner))) => {
            let [key, value] = split_top_level(inner)?[..] else {
                return Err(format!(
                    "MAP takes a key type and a value type, not '{inner}'"
                ));
            };
            let entries = Field::new(
                "entries",
                DataType::Struct(
                    vec![
                        Field::new("keys", parse_type(key)?, false),
                        Field::new("values", parse_type(value)?, true),
                    ]
                    .into(),
                ),
                false,
            );
            DataType::Map(Arc::new(entries), false)
        }
        ("STRUCT", Some(('>', inner))) => DataType::Struct(parse_fields(inner, "field")?.into()),
        ("DECIMAL" | "DEC" | "NUMERIC", args) => {
            let numbers: Vec<&str> = match args {
                None => Vec::new(),
                Some((')', inner)) => inner.split(',').map(str::trim).collect(),
                Some(_) => return Err(unknown()),
            };
            let number = |text: &str| text.parse::<u8>().map_err(|_| unknown());
            let (precision, scale) = match numbers[..] {
                [] => (10, 0),
                [p] => (number(p)?, 0),
                [p, s] => (number(p)?, number(s)?),
                _ => return Err(unknown()),
            };
            if !(1..=MAX_DECIMAL_PRECISION).contains(&precision) || scale > precision {
                return Err(format!(
                    "'{ty}' needs a precision from 1 to {MAX_DECIMAL_PRECISION} and a scale no larger than it"
                ));
            }
            DataType::Decimal128(precision, scale as i8)
        }
        ("VARCHAR" | "CHAR", Some((')', _))) => DataType::Utf8,
        (_, Some(_)) => return Err(unknown()),
        ("STRING" | "VARCHAR" | "TEXT", None) => DataType::Utf8,
        ("BOOLEAN" | "BOOL", None) => DataType::Boolean,
        ("TINYINT" | "BYTE", None) => DataType::Int8,
        ("SMALLINT" | "SHORT", None) => DataType::Int16,
        ("INT" | "INTEGER", None) => DataType::Int32,
        ("BIGINT" | "LONG", None) => DataType::Int64,
        ("FLOAT" | "REAL", None) => DataType::Float32,
        ("DOUBLE", None) => DataType::Float64,
        ("DATE", None) => DataType::Date32,
        ("TIMESTAMP", None) => timestamp_type(),
        ("BINARY", None) => DataType::Binary,
        _ => return Err(unknown()),
    })
}

/// Spark's name of an Arrow type (`simpleString`).
pub fn spark_type_name(t: &DataType) -> String {
    match t {
        DataType::Null => "void".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp".into(),
        DataType::Timestamp(_, None) => "timestamp_ntz".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            format!("array<{}>", spark_type_name(f.data_type()))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map<{},{}>",
                spark_type_name(kv[0].data_type()),
                spark_type_name(kv[1].data_type())
            ),
            other => spark_type_name(other),
        },
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}:{}", f.name(), spark_type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        DataType::Duration(TimeUnit::Microsecond) => "interval day to second".into(),
        other => other.to_string().to_ascii_lowercase(),
    }
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

    /// Spark's DDL for decimals and nested types; `typeof` names each back as Spark does.
    #[test]
    fn ddl_parses_decimals_and_nested_types() {
        let s = parse_ddl(
            "price DECIMAL(10,2), d decimal, tags ARRAY<STRING>, attrs MAP<STRING, BIGINT>, \
             nested STRUCT<a: BIGINT, `b c` STRING, deeper STRUCT<x ARRAY<INT>>>, code VARCHAR(8)",
        )
        .unwrap();
        let names: Vec<_> = s
            .fields()
            .iter()
            .map(|f| spark_type_name(f.data_type()))
            .collect();
        assert_eq!(
            names,
            [
                "decimal(10,2)",
                "decimal(10,0)",
                "array<string>",
                "map<string,bigint>",
                "struct<a:bigint,b c:string,deeper:struct<x:array<int>>>",
                "string",
            ]
        );
    }

    #[test]
    fn ddl_refuses_malformed_nested_types_and_decimals() {
        for (ddl, says) in [
            ("a ARRAY<STRING", "'<' at position 8 is never closed"),
            ("a STRING>", "'>' at position 9 closes nothing"),
            ("a MAP<STRING>", "MAP takes a key type and a value type"),
            ("a DECIMAL(39,2)", "precision from 1 to 38"),
            ("a DECIMAL(5,6)", "precision from 1 to 38"),
            ("a DECIMAL(x)", "unknown type 'DECIMAL(x)' for column 'a'"),
            (
                "a STRUCT<b: FOO>",
                "unknown type 'FOO' for field 'b' for column 'a'",
            ),
            ("a STRUCT<b INT, b INT>", "field 'b' is declared twice"),
            ("a ARRAY(INT)", "unknown type 'ARRAY(INT)'"),
        ] {
            let e = parse_ddl(ddl).unwrap_err();
            assert!(e.contains(says), "{ddl}: {e}");
        }
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
