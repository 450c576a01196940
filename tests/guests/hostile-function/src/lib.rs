//! Test fixture: a scalar function that misbehaves in the way `config.behavior` names:
//! - `short`: answers with one value fewer than there are rows;
//! - `wrong-type`: declares BIGINT and answers with strings (bypassing the SDK's check);
//! - `loop`: spins forever;
//! - `refuse`: refuses its arguments at init.
//!
//! Otherwise it answers with its first argument.

use sluice_guest_sdk::prelude::*;

struct Hostile {
    behavior: String,
    field: Field,
}

impl ScalarFunction for Hostile {
    fn init(config: &Config, arguments: &Schema) -> Result<Self, Error> {
        let behavior = config["behavior"].as_str().unwrap_or("none").to_owned();
        if behavior == "refuse" {
            return Err("hostile refuses every argument".into());
        }
        let first = arguments.fields().first().ok_or("needs an argument")?;
        let field = match behavior.as_str() {
            "wrong-type" => Field::new("r", DataType::Int64, true),
            _ => first.as_ref().clone().with_nullable(true),
        };
        Ok(Hostile { behavior, field })
    }

    fn output_field(&self) -> Field {
        self.field.clone()
    }

    fn call(&mut self, arguments: &RecordBatch) -> Result<ArrayRef, Error> {
        let first = arguments.column(0).clone();
        match self.behavior.as_str() {
            "short" => Ok(first.slice(0, first.len().saturating_sub(1))),
            "wrong-type" => {
                // Emit through the raw binding: the SDK would refuse the mismatch itself.
                let strings: ArrayRef = Arc::new(StringArray::from(vec!["x"; first.len()]));
                let schema = Arc::new(Schema::new(vec![Field::new("r", DataType::Utf8, true)]));
                let batch = RecordBatch::try_new(schema, vec![strings])?;
                raw_emit(&batch)?;
                Err("__emitted".into())
            }
            "loop" => {
                #[allow(clippy::empty_loop)]
                loop {}
            }
            _ => Ok(first),
        }
    }
}

/// Hands `batch` to the host as it is, without the SDK's type check.
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

export_function!(Hostile);
