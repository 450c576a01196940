//! What a processor's state is made of, written next to it in the checkpoint
//! (`state/processor/layout.json`): the key columns, the declared state variables and the
//! time mode. A restart checks it (state written under one declaration is never read under
//! another), and `sluice state show` reads it to print the state without the module.

use arrow_schema::SchemaRef;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::wasm::processor::{StateKind, StateVariable, TimeMode, ValueEncoding};

/// The file's contents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Layout {
    /// The key columns as an Arrow IPC schema message, hex.
    pub key_schema: String,
    /// The state variables in declaration order.
    pub variables: Vec<VariableLayout>,
    /// `none`, `processingTime` or `eventTime`.
    pub time_mode: String,
}

/// One state variable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VariableLayout {
    /// Its name.
    pub name: String,
    /// `value`, `list` or `map`.
    pub kind: String,
    /// `bytes`, `utf8`, `json`, `int64` or `float64`.
    pub encoding: String,
    /// Its TTL, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

fn kind_name(k: StateKind) -> &'static str {
    match k {
        StateKind::Value => "value",
        StateKind::List => "list",
        StateKind::Map => "map",
    }
}

fn encoding_name(e: ValueEncoding) -> &'static str {
    match e {
        ValueEncoding::Bytes => "bytes",
        ValueEncoding::Utf8 => "utf8",
        ValueEncoding::Json => "json",
        ValueEncoding::Int64 => "int64",
        ValueEncoding::Float64 => "float64",
    }
}

impl Layout {
    /// The layout of a processor.
    pub fn of(key_schema: &SchemaRef, variables: &[StateVariable], mode: TimeMode) -> Layout {
        Layout {
            key_schema: crate::state::layout::schema_hex(key_schema),
            variables: variables
                .iter()
                .map(|v| VariableLayout {
                    name: v.name.clone(),
                    kind: kind_name(v.kind).into(),
                    encoding: encoding_name(v.encoding).into(),
                    ttl_ms: v.ttl_ms,
                })
                .collect(),
            time_mode: super::time_mode_name(mode).into(),
        }
    }

    /// The key columns.
    pub fn key_schema(&self) -> std::result::Result<SchemaRef, String> {
        crate::state::layout::schema_from_hex(&self.key_schema)
    }

    /// The variables as the operator knows them.
    pub fn variables(&self) -> std::result::Result<Vec<StateVariable>, String> {
        self.variables
            .iter()
            .map(|v| {
                let kind = match v.kind.as_str() {
                    "value" => StateKind::Value,
                    "list" => StateKind::List,
                    "map" => StateKind::Map,
                    other => return Err(format!("unknown state kind '{other}'")),
                };
                let encoding = match v.encoding.as_str() {
                    "bytes" => ValueEncoding::Bytes,
                    "utf8" => ValueEncoding::Utf8,
                    "json" => ValueEncoding::Json,
                    "int64" => ValueEncoding::Int64,
                    "float64" => ValueEncoding::Float64,
                    other => return Err(format!("unknown encoding '{other}'")),
                };
                Ok(StateVariable {
                    name: v.name.clone(),
                    kind,
                    encoding,
                    ttl_ms: v.ttl_ms,
                })
            })
            .collect()
    }

    /// Reads the layout under `checkpoint`, if one was written.
    pub fn read(checkpoint: &crate::storage::Location, operator: &str) -> Result<Option<Layout>> {
        crate::state::layout::read(checkpoint, operator)?
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| {
                crate::state::layout::corrupt(
                    checkpoint,
                    operator,
                    format!("unreadable processor layout: {e}"),
                )
            })
    }
}

fn file(checkpoint: &crate::storage::Location, operator: &str) -> std::path::PathBuf {
    crate::state::layout::file(checkpoint, operator).to_path_buf()
}

/// Writes the layout on a new checkpoint; on an existing one refuses a different key or
/// state declaration (TTLs may change: they apply from the next change of a value).
pub fn check_or_write(
    checkpoint: &crate::storage::Location,
    operator: &str,
    key_schema: &SchemaRef,
    variables: &[StateVariable],
    mode: TimeMode,
) -> Result<()> {
    let now = Layout::of(key_schema, variables, mode);
    let shape = |l: &Layout| {
        (
            l.key_schema.clone(),
            l.variables
                .iter()
                .map(|v| (v.name.clone(), v.kind.clone(), v.encoding.clone()))
                .collect::<Vec<_>>(),
        )
    };
    match Layout::read(checkpoint, operator)? {
        Some(before) if shape(&before) != shape(&now) => {
            let describe = |l: &Layout| {
                l.variables
                    .iter()
                    .map(|v| format!("{} ({} of {})", v.name, v.kind, v.encoding))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Err(Error::Checkpoint {
                path: file(checkpoint, operator),
                message: format!(
                    "the processor's key columns or state variables changed: the checkpoint holds [{}], the module declares [{}]; state cannot be carried across that change (use a new checkpointLocation)",
                    describe(&before),
                    describe(&now)
                ),
            })
        }
        Some(before) if before == now => Ok(()),
        _ => {
            let value = serde_json::to_value(&now)
                .map_err(|e| crate::state::layout::corrupt(checkpoint, operator, e.to_string()))?;
            crate::state::layout::write(checkpoint, operator, &value)
        }
    }
}

/// The processor's state after batch `version` as JSON rows, one per key: the key columns,
/// each present variable's value (decoded by its encoding), its expiry, and the timers.
/// `matches` picks keys by their JSON form (for `--key`).
pub fn state_rows(
    checkpoint: &crate::storage::Location,
    operator: &str,
    version: u64,
    matches: &dyn Fn(&serde_json::Map<String, serde_json::Value>) -> bool,
) -> Result<Vec<serde_json::Value>> {
    use serde_json::{Map, Value, json};
    let corrupt = |message: String| crate::state::layout::corrupt(checkpoint, operator, message);
    let layout = Layout::read(checkpoint, operator)?
        .ok_or_else(|| corrupt("no layout.json: the processor never started here".into()))?;
    let key_schema = layout.key_schema().map_err(corrupt)?;
    let variables = layout.variables().map_err(corrupt)?;
    let state = crate::state::StateStore::load_all_sorted(checkpoint, operator, version)?;
    let keys = crate::state::layout::keys_as_json(&key_schema, state.iter().map(|(k, _)| &k[..]))
        .map_err(corrupt)?;
    let mut rows = Vec::new();
    for ((_, blob), key) in state.iter().zip(keys) {
        if !matches(&key) {
            continue;
        }
        let parsed = super::key_state::parse(&variables, blob)
            .ok_or_else(|| corrupt("a key's state does not fit the layout".into()))?;
        let mut values = Map::new();
        let mut expires = Map::new();
        for (v, stored) in variables.iter().zip(&parsed.vars) {
            if let Some(s) = stored {
                values.insert(
                    v.name.clone(),
                    super::key_state::var_json(v, s.contents(blob)),
                );
                if s.expiry != i64::MAX {
                    expires.insert(v.name.clone(), Value::from(s.expiry));
                }
            }
        }
        let mut row = json!({
            "operator": operator,
            "key": key,
            "state": values,
            "timers": parsed.timers,
        });
        if !expires.is_empty() {
            row["expiresAtMs"] = Value::Object(expires);
        }
        rows.push(row);
    }
    Ok(rows)
}
