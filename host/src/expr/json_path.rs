//! `get_json_object(text, '$.a.b[0]')` as Spark has it: the value at a JSON path, as text — a
//! string without its quotes, anything else as compact JSON — or null when the text is not
//! JSON, the path leads nowhere, or the value there is JSON's null. Neither DataFusion nor
//! datafusion-spark has it; serde_json (already a dependency) does the parsing.

use std::sync::Arc;

use arrow_array::Array;
use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_schema::DataType;
use datafusion_common::{Result, ScalarValue, exec_err, plan_err};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use serde_json::Value;

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// `.name` or `['name']`.
    Field(String),
    /// `[n]`.
    Index(usize),
}

/// The steps of `path` (`$`, then `.name`, `['name']` or `[n]`), or why it is not one.
fn parse_path(path: &str) -> std::result::Result<Vec<Step>, String> {
    let Some(mut rest) = path.strip_prefix('$') else {
        return Err(format!("the JSON path '{path}' must start with '$'"));
    };
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err(format!("the JSON path '{path}' has an empty field name"));
            }
            steps.push(Step::Field(after[..end].to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("['") {
            let Some(end) = after.find("']") else {
                return Err(format!("the JSON path '{path}' has an unclosed ['"));
            };
            steps.push(Step::Field(after[..end].to_owned()));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return Err(format!("the JSON path '{path}' has an unclosed ["));
            };
            match after[..end].trim().parse() {
                Ok(i) => steps.push(Step::Index(i)),
                Err(_) => {
                    return Err(format!(
                        "the JSON path '{path}': '[{}]' is not an array index (wildcards are not supported)",
                        &after[..end]
                    ));
                }
            }
            rest = &after[end + 1..];
        } else {
            return Err(format!(
                "the JSON path '{path}': expected '.' or '[' at '{rest}'"
            ));
        }
    }
    Ok(steps)
}

/// The value at `steps` in `text`, as Spark writes it, if there is one.
fn extract(text: &str, steps: &[Step]) -> Option<String> {
    let root: Value = serde_json::from_str(text).ok()?;
    let mut at = &root;
    for step in steps {
        at = match step {
            Step::Field(name) => at.as_object()?.get(name)?,
            Step::Index(i) => at.as_array()?.get(*i)?,
        };
    }
    match at {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `get_json_object(text, path)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct GetJsonObject {
    signature: Signature,
}

impl GetJsonObject {
    pub(super) fn new() -> GetJsonObject {
        GetJsonObject {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Utf8],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for GetJsonObject {
    fn name(&self) -> &str {
        "get_json_object"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let steps = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(p))) => match parse_path(p) {
                Ok(steps) => Some(steps),
                Err(e) => return plan_err!("get_json_object: {e}"),
            },
            ColumnarValue::Scalar(_) => None,
            ColumnarValue::Array(_) => {
                return exec_err!(
                    "get_json_object takes its path as a literal, e.g. get_json_object(value, '$.user.id')"
                );
            }
        };
        let text = args.args[0].clone().into_array(args.number_rows)?;
        let text = text.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(text.len(), text.value_data().len() / 4);
        for row in 0..text.len() {
            match (&steps, text.is_null(row)) {
                (Some(steps), false) => out.append_option(extract(text.value(row), steps)),
                _ => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_reach_fields_indexes_and_quoted_names() {
        let text = r#"{"a":{"b":[10,{"c":"x"}]},"d e":true,"n":null}"#;
        let at = |p: &str| extract(text, &parse_path(p).unwrap());
        assert_eq!(at("$.a.b[0]").as_deref(), Some("10"));
        assert_eq!(at("$.a.b[1].c").as_deref(), Some("x"));
        assert_eq!(at("$['d e']").as_deref(), Some("true"));
        assert_eq!(at("$.a").as_deref(), Some(r#"{"b":[10,{"c":"x"}]}"#));
        assert_eq!(at("$.n"), None);
        assert_eq!(at("$.missing"), None);
        assert_eq!(extract("not json", &parse_path("$.a").unwrap()), None);
    }

    #[test]
    fn bad_paths_say_why() {
        assert!(
            parse_path("a.b")
                .unwrap_err()
                .contains("must start with '$'")
        );
        assert!(parse_path("$.a[*]").unwrap_err().contains("wildcards"));
        assert!(parse_path("$.a[1").unwrap_err().contains("unclosed"));
    }
}
