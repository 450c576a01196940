//! JSON lines of a flat declared schema (integers, floats, strings, booleans, timestamps)
//! decoded in one pass from the bytes into the column builders: the file source's fast path.
//!
//! arrow-json first builds a tape of the whole input, then decodes each column from the tape
//! by field name; for flat rows most of its time is that generality. This decoder takes only
//! what it reads exactly as arrow-json does — plain numbers, strings (escapes decoded as
//! arrow-json decodes them), `true`/`false`/`null`, timestamps, unknown keys with scalar
//! values — and gives
//! up (`None`) on anything else, so the caller decodes the file with arrow-json, whose values,
//! errors and malformed-row handling stay the reference (the `decode` fuzz target checks the
//! two agree). No crate fits: simd-json and sonic-rs parse into a tape or DOM of their own,
//! which is the step this skips.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, PrimitiveBuilder, StringBuilder};
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{ArrayRef, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, SchemaRef, TimeUnit};

/// The most fields a flat schema may have here (which fields a row set is a bit set).
const MAX_FIELDS: usize = 64;

/// A decoder for one flat schema.
#[derive(Debug, Clone)]
pub struct FlatJson {
    schema: SchemaRef,
}

/// One column being built, of a type this decoder reads.
enum Builder {
    Int64(PrimitiveBuilder<Int64Type>),
    Int32(PrimitiveBuilder<Int32Type>),
    Int16(PrimitiveBuilder<Int16Type>),
    Int8(PrimitiveBuilder<Int8Type>),
    Float64(PrimitiveBuilder<Float64Type>),
    Float32(PrimitiveBuilder<Float32Type>),
    Utf8(StringBuilder),
    Boolean(BooleanBuilder),
    Timestamp(PrimitiveBuilder<TimestampMicrosecondType>),
}

impl FlatJson {
    /// A decoder for `schema`, or `None` if a field is of a type it does not build (nested,
    /// decimal, date, binary, a timestamp of another unit or zone) or is not nullable.
    pub fn new(schema: &SchemaRef) -> Option<FlatJson> {
        let fields = schema.fields();
        let readable = !fields.is_empty()
            && fields.len() <= MAX_FIELDS
            && fields
                .iter()
                .all(|f| f.is_nullable() && Builder::of(f.data_type(), 0).is_some());
        readable.then(|| FlatJson {
            schema: schema.clone(),
        })
    }

    /// The rows of `text` in batches of at most `batch_rows`, or `None` when something in
    /// them is for arrow-json to read.
    pub fn decode(&self, text: &str, batch_rows: usize) -> Option<Vec<RecordBatch>> {
        let batch_rows = batch_rows.max(1);
        // Rows are ~100 bytes in the usual files: a first guess for the builders.
        let expected = (text.len() / 100).clamp(1, batch_rows);
        let mut out = Vec::new();
        let mut builders = self.builders(expected);
        let mut scratch = String::new();
        let mut rows = 0;
        let mut at = skip_whitespace(text.as_bytes(), 0);
        while at < text.len() {
            at = self.row(text, at, &mut builders, &mut scratch)?;
            rows += 1;
            if rows == batch_rows {
                out.push(self.finish(&mut builders)?);
                rows = 0;
            }
            at = skip_whitespace(text.as_bytes(), at);
        }
        if rows > 0 {
            out.push(self.finish(&mut builders)?);
        }
        Some(out)
    }

    fn builders(&self, rows: usize) -> Vec<Builder> {
        self.schema
            .fields()
            .iter()
            // Every field has a builder: `new` checked.
            .filter_map(|f| Builder::of(f.data_type(), rows))
            .collect()
    }

    fn finish(&self, builders: &mut [Builder]) -> Option<RecordBatch> {
        let columns: Vec<ArrayRef> = builders
            .iter_mut()
            .zip(self.schema.fields())
            .map(|(b, f)| -> ArrayRef {
                match b {
                    Builder::Int64(b) => Arc::new(b.finish()),
                    Builder::Int32(b) => Arc::new(b.finish()),
                    Builder::Int16(b) => Arc::new(b.finish()),
                    Builder::Int8(b) => Arc::new(b.finish()),
                    Builder::Float64(b) => Arc::new(b.finish()),
                    Builder::Float32(b) => Arc::new(b.finish()),
                    Builder::Utf8(b) => Arc::new(b.finish()),
                    Builder::Boolean(b) => Arc::new(b.finish()),
                    Builder::Timestamp(b) => {
                        Arc::new(b.finish().with_data_type(f.data_type().clone()))
                    }
                }
            })
            .collect();
        RecordBatch::try_new(self.schema.clone(), columns).ok()
    }

    /// Reads the object at `at` into one row of `builders`; the position after it. `scratch`
    /// holds a string's text while its escapes are decoded.
    fn row(
        &self,
        t: &str,
        mut at: usize,
        builders: &mut [Builder],
        scratch: &mut String,
    ) -> Option<usize> {
        let b = t.as_bytes();
        if b.get(at) != Some(&b'{') {
            return None;
        }
        at = skip_whitespace(b, at + 1);
        let mut set: u64 = 0;
        // Rows mostly list their keys in one order: try the field after the last one first.
        let mut guess = 0;
        if b.get(at) == Some(&b'}') {
            at += 1;
        } else {
            loop {
                if b.get(at) != Some(&b'"') {
                    return None;
                }
                let (key, after) = plain_string(t, at + 1)?;
                at = skip_whitespace(b, after);
                if b.get(at) != Some(&b':') {
                    return None;
                }
                at = skip_whitespace(b, at + 1);
                match self.field(key, guess) {
                    Some(i) => {
                        if set & (1 << i) != 0 {
                            // A key twice: which one arrow-json keeps is its business.
                            return None;
                        }
                        set |= 1 << i;
                        guess = i + 1;
                        at = value(t, at, &mut builders[i], scratch)?;
                    }
                    None => at = skip_scalar(t, at, scratch)?,
                }
                at = skip_whitespace(b, at);
                match b.get(at) {
                    Some(b',') => at = skip_whitespace(b, at + 1),
                    Some(b'}') => {
                        at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        let all = if builders.len() == 64 {
            u64::MAX
        } else {
            (1u64 << builders.len()) - 1
        };
        if set != all {
            for (i, builder) in builders.iter_mut().enumerate() {
                if set & (1 << i) == 0 {
                    append_null(builder);
                }
            }
        }
        Some(at)
    }

    fn field(&self, key: &str, guess: usize) -> Option<usize> {
        let fields = self.schema.fields();
        if fields.get(guess).is_some_and(|f| f.name() == key) {
            return Some(guess);
        }
        fields.iter().position(|f| f.name() == key)
    }
}

impl Builder {
    /// A builder for a column of `data_type` with room for `rows`, if this decoder reads it.
    fn of(data_type: &DataType, rows: usize) -> Option<Builder> {
        Some(match data_type {
            DataType::Int64 => Builder::Int64(PrimitiveBuilder::with_capacity(rows)),
            DataType::Int32 => Builder::Int32(PrimitiveBuilder::with_capacity(rows)),
            DataType::Int16 => Builder::Int16(PrimitiveBuilder::with_capacity(rows)),
            DataType::Int8 => Builder::Int8(PrimitiveBuilder::with_capacity(rows)),
            DataType::Float64 => Builder::Float64(PrimitiveBuilder::with_capacity(rows)),
            DataType::Float32 => Builder::Float32(PrimitiveBuilder::with_capacity(rows)),
            DataType::Utf8 => Builder::Utf8(StringBuilder::with_capacity(rows, rows * 16)),
            DataType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(rows)),
            // Sluice's TIMESTAMP: microseconds, in UTC.
            DataType::Timestamp(TimeUnit::Microsecond, tz)
                if tz.as_deref().is_none_or(|tz| tz == "+00:00" || tz == "UTC") =>
            {
                Builder::Timestamp(PrimitiveBuilder::with_capacity(rows))
            }
            _ => return None,
        })
    }
}

fn append_null(builder: &mut Builder) {
    match builder {
        Builder::Int64(b) => b.append_null(),
        Builder::Int32(b) => b.append_null(),
        Builder::Int16(b) => b.append_null(),
        Builder::Int8(b) => b.append_null(),
        Builder::Float64(b) => b.append_null(),
        Builder::Float32(b) => b.append_null(),
        Builder::Utf8(b) => b.append_null(),
        Builder::Boolean(b) => b.append_null(),
        Builder::Timestamp(b) => b.append_null(),
    }
}

/// Reads the value at `at` into `builder`; the position after it.
fn value(t: &str, at: usize, builder: &mut Builder, scratch: &mut String) -> Option<usize> {
    let b = t.as_bytes();
    if b[at..].starts_with(b"null") {
        append_null(builder);
        return Some(at + 4);
    }
    match builder {
        Builder::Int64(out) => append_integer(b, at, out),
        Builder::Int32(out) => append_integer(b, at, out),
        Builder::Int16(out) => append_integer(b, at, out),
        Builder::Int8(out) => append_integer(b, at, out),
        Builder::Float64(out) => append_float(t, at, out),
        Builder::Float32(out) => append_float(t, at, out),
        Builder::Utf8(out) => {
            if b.get(at) != Some(&b'"') {
                return None;
            }
            let (text, end) = string(t, at + 1, scratch)?;
            out.append_value(text);
            Some(end)
        }
        Builder::Boolean(out) => {
            if b[at..].starts_with(b"true") {
                out.append_value(true);
                Some(at + 4)
            } else if b[at..].starts_with(b"false") {
                out.append_value(false);
                Some(at + 5)
            } else {
                None
            }
        }
        Builder::Timestamp(out) => {
            if b.get(at) != Some(&b'"') {
                return None;
            }
            let (text, end) = string(t, at + 1, scratch)?;
            out.append_value(timestamp_micros(text)?);
            Some(end)
        }
    }
}

/// The integer at `at` into `out`, if it fits the column's type; the position after it.
fn append_integer<T>(b: &[u8], at: usize, out: &mut PrimitiveBuilder<T>) -> Option<usize>
where
    T: ArrowPrimitiveType,
    T::Native: TryFrom<i64>,
{
    let (v, end) = integer(b, at)?;
    out.append_value(T::Native::try_from(v).ok()?);
    Some(end)
}

/// f32 and f64, which may overflow to infinity when parsed.
trait Finite: Sized {
    /// The value, unless it is infinite or NaN.
    fn finite(self) -> Option<Self>;
}

impl Finite for f32 {
    fn finite(self) -> Option<f32> {
        self.is_finite().then_some(self)
    }
}

impl Finite for f64 {
    fn finite(self) -> Option<f64> {
        self.is_finite().then_some(self)
    }
}

/// The number at `at` into `out`, if it is finite in the column's type (what lexical,
/// arrow-json's parser, does past the range is for arrow-json to say); the position after it.
fn append_float<T>(t: &str, at: usize, out: &mut PrimitiveBuilder<T>) -> Option<usize>
where
    T: ArrowPrimitiveType,
    T::Native: std::str::FromStr + Finite,
{
    let end = number_end(t.as_bytes(), at)?;
    let v: T::Native = t[at..end].parse().ok()?;
    out.append_value(v.finite()?);
    Some(end)
}

fn skip_whitespace(b: &[u8], mut at: usize) -> usize {
    while let Some(c) = b.get(at) {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        at += 1;
    }
    at
}

/// The text of a string whose opening quote is just before `at`, and the position after its
/// closing quote; `None` for a string with an escape (a key: which field it names is for
/// arrow-json to say) or without an end.
fn plain_string(t: &str, at: usize) -> Option<(&str, usize)> {
    let end = quote_or_backslash(t, at)?;
    (t.as_bytes()[end] == b'"').then(|| (&t[at..end], end + 1))
}

/// Where the first `"` or `\\` at or after `at` is.
fn quote_or_backslash(t: &str, at: usize) -> Option<usize> {
    Some(at + memchr::memchr2(b'"', b'\\', t.as_bytes().get(at..)?)?)
}

/// The text of a string whose opening quote is just before `at`, its escapes decoded into
/// `scratch` as arrow-json's tape decodes them, and the position after its closing quote;
/// `None` for a bad escape or a string without an end.
fn string<'a>(t: &'a str, at: usize, scratch: &'a mut String) -> Option<(&'a str, usize)> {
    let b = t.as_bytes();
    let mut next = quote_or_backslash(t, at)?;
    if b[next] == b'"' {
        return Some((&t[at..next], next + 1));
    }
    scratch.clear();
    scratch.push_str(&t[at..next]);
    loop {
        // b[next] is a backslash.
        let escape = *b.get(next + 1)?;
        let mut i = next + 2;
        match escape {
            b'"' | b'\\' | b'/' => scratch.push(char::from(escape)),
            b'b' => scratch.push('\u{8}'),
            b'f' => scratch.push('\u{c}'),
            b'n' => scratch.push('\n'),
            b'r' => scratch.push('\r'),
            b't' => scratch.push('\t'),
            b'u' => {
                let high = hex4(b, i)?;
                i += 4;
                let c = match char::from_u32(u32::from(high)) {
                    Some(c) => c,
                    // A surrogate: the pair's other half must follow.
                    None => {
                        if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
                            return None;
                        }
                        let low = hex4(b, i + 2)?;
                        i += 6;
                        surrogate_pair(high, low)?
                    }
                };
                scratch.push(c);
            }
            _ => return None,
        }
        next = quote_or_backslash(t, i)?;
        scratch.push_str(&t[i..next]);
        if b[next] == b'"' {
            return Some((scratch.as_str(), next + 1));
        }
    }
}

/// Four hex digits at `at`.
fn hex4(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 4)?.iter().try_fold(0u16, |v, &c| {
        char::from(c).to_digit(16).map(|d| (v << 4) | d as u16)
    })
}

/// The character of a UTF-16 surrogate pair.
fn surrogate_pair(high: u16, low: u16) -> Option<char> {
    if !(0xD800..=0xDBFF).contains(&high) || !(0xDC00..=0xDFFF).contains(&low) {
        return None;
    }
    char::from_u32(((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00) + 0x1_0000)
}

/// A JSON integer of at most 18 digits (which always fits an i64) at `at`: `-?(0|[1-9][0-9]*)`
/// not followed by a fraction or exponent; its value and the position after it.
fn integer(b: &[u8], at: usize) -> Option<(i64, usize)> {
    let negative = b.get(at) == Some(&b'-');
    let start = at + usize::from(negative);
    let mut end = start;
    let mut value: i64 = 0;
    while let Some(c @ b'0'..=b'9') = b.get(end) {
        if end - start == 18 {
            return None;
        }
        value = value * 10 + i64::from(c - b'0');
        end += 1;
    }
    let digits = end - start;
    if digits == 0 || (b[start] == b'0' && digits > 1) {
        return None;
    }
    if matches!(b.get(end), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((if negative { -value } else { value }, end))
}

/// The end of a JSON number at `at` (RFC 8259's grammar), or `None`.
fn number_end(b: &[u8], at: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        let from = i;
        while matches!(b.get(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        (i > from).then_some(i)
    };
    let mut i = at + usize::from(b.get(at) == Some(&b'-'));
    let int_end = digits(i)?;
    if b[i] == b'0' && int_end > i + 1 {
        return None;
    }
    i = int_end;
    if b.get(i) == Some(&b'.') {
        i = digits(i + 1)?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(i)?;
    }
    Some(i)
}

/// Skips a string, number, `true`, `false` or `null` (a key the schema does not name);
/// `None` for an object or array, or anything malformed.
fn skip_scalar(t: &str, at: usize, scratch: &mut String) -> Option<usize> {
    let b = t.as_bytes();
    match b.get(at)? {
        b'"' => string(t, at + 1, scratch).map(|(_, end)| end),
        b'-' | b'0'..=b'9' => number_end(b, at),
        _ => [&b"true"[..], b"false", b"null"]
            .into_iter()
            .find(|word| b[at..].starts_with(word))
            .map(|word| at + word.len()),
    }
}

/// `text` as microseconds since the epoch, read as arrow-json reads a TIMESTAMP in UTC:
/// `YYYY-MM-DDTHH:MM:SS[.fraction][Z]` here, every other form by arrow-cast's own parser.
fn timestamp_micros(text: &str) -> Option<i64> {
    iso_micros(text.as_bytes()).or_else(|| {
        arrow_cast::parse::string_to_datetime(&chrono::Utc, text)
            .ok()
            .map(|t| t.timestamp_micros())
    })
}

/// The common form, `2024-05-01T12:00:00`, with up to 9 fraction digits and an optional `Z`.
fn iso_micros(t: &[u8]) -> Option<i64> {
    if t.len() < 19 || t[4] != b'-' || t[7] != b'-' || t[10] != b'T' || t[13] != b':' {
        return None;
    }
    if t[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        t[from..to].iter().try_fold(0i64, |v, c| {
            c.is_ascii_digit().then(|| v * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &t[19..];
    let mut micros = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        // Truncated to microseconds, as chrono's timestamp_micros does.
        for (i, c) in fraction[..digits].iter().enumerate().take(6) {
            micros += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
        }
        rest = &fraction[digits..];
    }
    if !(rest.is_empty() || rest == b"Z") {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3_600 + minute * 60 + second) * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{Field, Schema};

    fn schema() -> SchemaRef {
        crate::schema::parse_ddl(
            "id BIGINT, n INT, small SMALLINT, tiny TINYINT, x DOUBLE, f FLOAT, s STRING, ok BOOLEAN, ts TIMESTAMP",
        )
        .unwrap()
    }

    /// What arrow-json makes of `text`, or `None` if it refuses it.
    fn arrow_json(schema: &SchemaRef, text: &str) -> Option<Vec<RecordBatch>> {
        let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(2)
            .build_decoder()
            .ok()?;
        let mut out = Vec::new();
        let mut rest = text.as_bytes();
        loop {
            let read = decoder.decode(rest).ok()?;
            rest = &rest[read..];
            if let Some(b) = decoder.flush().ok()? {
                out.push(b);
            }
            if rest.is_empty() || read == 0 {
                break;
            }
        }
        if decoder.has_partial_record() {
            return None;
        }
        Some(out)
    }

    fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
        arrow_select::concat::concat_batches(schema, batches).unwrap()
    }

    /// Every text the fast path reads, it reads as arrow-json does; the rest it leaves.
    #[test]
    fn reads_what_arrow_json_reads_and_leaves_the_rest_to_it() {
        let schema = schema();
        let fast = FlatJson::new(&schema).unwrap();
        let read = [
            r#"{"id":1,"n":-2,"small":3,"tiny":-4,"x":1.5e3,"f":0.25,"s":"Seoul","ok":true,"ts":"2024-02-29T23:59:59.123456789Z"}"#,
            r#"{"ts":"1969-12-31T23:59:59.5","s":"","ok":false,"other":"x","more":-1.5,"id":null}"#,
            "{}\n\n{ \"id\" : 7 ,\t\"s\":\"a\u{e9}b\" }\r\n{\"id\":0}{\"id\":-0}",
            r#"{"ts":"2024-05-01 12:00:00+09:00"}"#,
            r#"{"ts":"2024-05-01T12:00:00"}"#,
            r#"{"x":-0.0,"f":1e-3,"id":999999999999999999,"a":true,"b":null}"#,
            r#"{"s":"q\"b\\s\/\b\f\n\r\t\u00e9\uD83D\uDE00 end","other":"\"","ts":"2024-05-01T12:00:00\u005a"}"#,
        ];
        for text in read {
            let got = fast.decode(text, 2).expect(text);
            let want = arrow_json(&schema, text).expect(text);
            assert_eq!(concat(&schema, &got), concat(&schema, &want), "{text}");
        }
        let left = [
            r#"{"s\u0041":"a"}"#,               // an escape in a key
            r#"{"s":"\uD83D"}"#,                // half a surrogate pair
            r#"{"s":"\uDE00\uD83D"}"#,          // a pair the wrong way round
            r#"{"s":"\x"}"#,                    // no such escape
            r#"{"id":1.0}"#,                    // a fraction for an integer
            r#"{"id":"1"}"#,                    // a string for a number
            r#"{"s":1}"#,                       // a number for a string
            r#"{"id":1,"id":2}"#,               // a key twice
            r#"{"nested":{"a":1}}"#,            // an object under an unknown key
            r#"{"id":01}"#,                     // a leading zero
            r#"{"id":1,}"#,                     // a trailing comma
            r#"{"id":1999999999999999999999}"#, // past 18 digits
            r#"{"n":3000000000}"#,              // out of INT's range
            r#"{"tiny":200}"#,                  // out of TINYINT's range
            r#"{"ts":"2024-02-30T00:00:00"}"#,  // no such day: arrow-cast's parser says so
            r#"[1]"#,
            r#"{"id":1"#,
            r#"{"id":1} x"#,
            r#"{"ok":tru}"#,
        ];
        for text in left {
            assert!(fast.decode(text, 2).is_none(), "{text}");
        }
    }

    #[test]
    fn splits_batches_and_refuses_schemas_it_does_not_build() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let fast = FlatJson::new(&schema).unwrap();
        let text = (0..5)
            .map(|i| format!("{{\"id\":{i}}}\n"))
            .collect::<String>();
        let batches = fast.decode(&text, 2).unwrap();
        assert_eq!(
            batches
                .iter()
                .map(RecordBatch::num_rows)
                .collect::<Vec<_>>(),
            [2, 2, 1]
        );
        for ddl in ["d DATE", "p DECIMAL(10,2)", "t ARRAY<STRING>", "b BINARY"] {
            assert!(
                FlatJson::new(&crate::schema::parse_ddl(ddl).unwrap()).is_none(),
                "{ddl}"
            );
        }
        let required = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        assert!(FlatJson::new(&required).is_none());
    }
}
