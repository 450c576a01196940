//! Test fixture: a transform that misbehaves in the way `config.behavior` names, on the batch
//! whose first `value` equals `config.at` (every batch when absent):
//! - `loop`: spins forever;
//! - `alloc`: allocates without end;
//! - `open-file`: tries to read `config.path` through WASI and reports what happened;
//! - `env`: reports any environment variable it can see;
//! - `wrong-schema`: emits a string column where it declared integers (bypassing the SDK's
//!   own check, to reach the host's);
//! - `panic`: emits part of its output, then panics;
//! - `flood`: emits its input again and again, without end;
//! - `rows-flood`: the same through `emit_rows` (nothing crosses, but the host would hold it);
//! - `rows-bad-column`: answers with an input column that does not exist (through the raw
//!   binding, to reach the host's check).
//!
//! Otherwise it passes rows through unchanged.

use sluice_guest_sdk::prelude::*;

struct Hostile {
    behavior: String,
    at: Option<i64>,
    path: String,
    schema: SchemaRef,
}

impl Transform for Hostile {
    fn init(config: &Config, input: SchemaRef) -> Result<Self, Error> {
        Ok(Hostile {
            behavior: config["behavior"].as_str().unwrap_or("none").to_owned(),
            at: config["at"].as_i64(),
            path: config["path"].as_str().unwrap_or("/etc/passwd").to_owned(),
            schema: input,
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
        let first = batch
            .column_by_name("value")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .and_then(|v| v.iter().next().flatten());
        if self.at.is_some() && self.at != first {
            return out.emit(&batch);
        }
        match self.behavior.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "open-file" => match std::fs::read(&self.path) {
                Ok(bytes) => Err(format!(
                    "read {} bytes of {} without a grant",
                    bytes.len(),
                    self.path
                )
                .into()),
                Err(e) => Err(format!("open-file {}: {e}", self.path).into()),
            },
            "env" => {
                let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                Err(format!("env: {} variables visible {vars:?}", vars.len()).into())
            }
            "wrong-schema" => {
                let strings = StringArray::from(vec!["not"; batch.num_rows()]);
                let wrong_schema = Arc::new(Schema::new(
                    self.schema
                        .fields()
                        .iter()
                        .map(|f| Field::new(f.name(), DataType::Utf8, true))
                        .collect::<Vec<_>>(),
                ));
                let columns: Vec<ArrayRef> = (0..batch.num_columns())
                    .map(|_| Arc::new(strings.clone()) as ArrayRef)
                    .collect();
                let wrong = RecordBatch::try_new(wrong_schema, columns)?;
                raw_emit(&wrong)
            }
            "flood" => loop {
                out.emit(&batch)?;
            },
            "rows-flood" => {
                let all: Vec<usize> = (0..batch.num_columns()).collect();
                loop {
                    out.emit_rows(None, &all)?;
                }
            }
            "rows-bad-column" => {
                use sluice_guest_sdk::bindings::sluice::pipeline::rows::{ColumnSource, emit_rows};
                // As many columns as the output has, the first one not in the input.
                let mut columns = vec![ColumnSource::Input(99)];
                columns.extend((1..batch.num_columns() as u32).map(ColumnSource::Input));
                emit_rows(None, &columns, None);
                Ok(())
            }
            "panic" => {
                out.emit(&batch.slice(0, batch.num_rows() / 2))?;
                panic!("boom in the middle of a batch");
            }
            _ => out.emit(&batch),
        }
    }
}

/// Emits through the raw binding, skipping the SDK's schema check.
fn raw_emit(batch: &RecordBatch) -> Result<(), Error> {
    use sluice_guest_sdk::abi;
    use sluice_guest_sdk::bindings::sluice::pipeline::arrow::{ArrayNodeParam, BatchParam};
    let data = abi::batch_data(batch);
    let nodes = abi::flatten_all(&data)?;
    let params: Vec<ArrayNodeParam<'_>> = nodes
        .iter()
        .map(|n| ArrayNodeParam {
            len: n.len,
            offset: n.offset,
            null_count: n.null_count,
            validity: n.validity.as_deref(),
            buffers: &n.buffers,
            num_children: n.num_children,
        })
        .collect();
    sluice_guest_sdk::bindings::sluice::pipeline::output::emit(BatchParam {
        num_rows: batch.num_rows() as u32,
        nodes: &params,
    });
    Ok(())
}

export_transform!(Hostile);
