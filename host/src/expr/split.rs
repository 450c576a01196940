//! `split(text, regex[, limit])` as Spark has it (Java's `String.split(regex, limit)`): the
//! pieces of `text` between the matches of `regex`, at most `limit` of them when `limit` > 0;
//! trailing empty pieces are kept (Spark passes Java's `-1`). DataFusion's `split_part` and
//! `string_to_array` take a literal delimiter, not a pattern, so this is ours.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, Field};
use datafusion_common::{Result, ScalarValue, exec_err, plan_err};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// `split(text, regex[, limit])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Split {
    signature: Signature,
}

impl Split {
    pub(super) fn new() -> Split {
        Split {
            signature: Signature::one_of(
                vec![
                    datafusion_expr::TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8]),
                    datafusion_expr::TypeSignature::Exact(vec![
                        DataType::Utf8,
                        DataType::Utf8,
                        DataType::Int64,
                    ]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

/// The pattern, compiled once when it is a literal (as it nearly always is).
fn pattern(value: &ColumnarValue) -> Result<Option<regex::Regex>> {
    match value {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(p))) => match regex::Regex::new(p) {
            Ok(r) => Ok(Some(r)),
            Err(e) => plan_err!("split's pattern '{p}': {e}"),
        },
        ColumnarValue::Scalar(_) => Ok(None),
        ColumnarValue::Array(_) => {
            exec_err!("split takes its pattern as a literal, e.g. split(value, ' ')")
        }
    }
}

/// Java's `String.split(regex, limit)` with `limit` ≤ 0 meaning no limit, trailing empty
/// strings kept; a zero-width match at the start adds no leading empty piece.
fn split_one<'t>(text: &'t str, re: &regex::Regex, limit: i32, out: &mut Vec<&'t str>) {
    out.clear();
    if text.is_empty() {
        out.push("");
        return;
    }
    let mut last = 0;
    for m in re.find_iter(text) {
        if limit > 0 && out.len() + 1 >= limit as usize {
            break;
        }
        if m.end() == 0 {
            // A zero-width match at the very start: Java skips it.
            continue;
        }
        if m.start() == m.end() && m.start() >= text.len() {
            break;
        }
        out.push(&text[last..m.start()]);
        last = m.end();
    }
    out.push(&text[last..]);
}

impl ScalarUDFImpl for Split {
    fn name(&self) -> &str {
        "split"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Utf8,
            true,
        ))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let Some(re) = pattern(&args.args[1])? else {
            // A null pattern: every result is null.
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from(
                self.return_type(&[])?,
            )?));
        };
        let limit = match args.args.get(2) {
            None => -1,
            Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(l)))) => {
                i32::try_from(*l).unwrap_or(if *l > 0 { i32::MAX } else { -1 })
            }
            Some(ColumnarValue::Scalar(_)) => -1,
            Some(ColumnarValue::Array(_)) => {
                return exec_err!("split takes its limit as a literal");
            }
        };
        let text: ArrayRef = args.args[0].clone().into_array(rows)?;
        let text = text.as_string::<i32>();
        let mut builder = ListBuilder::new(StringBuilder::new());
        let mut pieces = Vec::new();
        for value in text.iter() {
            match value {
                Some(t) => {
                    split_one(t, &re, limit, &mut pieces);
                    for p in &pieces {
                        builder.values().append_value(p);
                    }
                    builder.append(true);
                }
                None => builder.append(false),
            }
        }
        let array: ArrayRef = Arc::new(builder.finish());
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(_) if array.len() == 1 => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
            }
            _ => ColumnarValue::Array(array),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str, pattern: &str, limit: i32) -> Vec<String> {
        let re = regex::Regex::new(pattern).unwrap();
        let mut out = Vec::new();
        split_one(text, &re, limit, &mut out);
        out.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn splits_as_java_string_split_with_spark_limits() {
        // Java's String.split(p, limit), and Spark's UTF8String.split for an empty pattern.
        assert_eq!(split("a b  c", " ", -1), ["a", "b", "", "c"]);
        assert_eq!(
            split("oneAtwoBthreeC", "[ABC]", -1),
            ["one", "two", "three", ""]
        );
        assert_eq!(split("oneAtwoBthreeC", "[ABC]", 2), ["one", "twoBthreeC"]);
        assert_eq!(
            split("oneAtwoBthreeC", "[ABC]", 0),
            ["one", "two", "three", ""]
        );
        assert_eq!(split("", ",", -1), [""]);
        assert_eq!(split("abc", "", -1), ["a", "b", "c"]);
        assert_eq!(split(",a,", ",", -1), ["", "a", ""]);
    }
}
