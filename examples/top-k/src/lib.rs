//! A user-defined aggregate: the `k` largest values of an integer column per group, as a
//! list — top-k is what Spark users write a UDAF for. Named in a pipeline like a built-in:
//!
//! ```toml
//! aggs = [{ module = "modules/top_k.wasm", column = "amount", as = "top3", config = { k = 3 } }]
//! ```
//!
//! A group's state is at most `k` little-endian i64 values, largest first, so it stays small
//! however many rows the group sees.

use sluice_guest_sdk::arrow_array::builder::{Int64Builder, ListBuilder};
use sluice_guest_sdk::prelude::*;

struct TopK {
    k: usize,
}

fn decode(state: &[u8]) -> Vec<i64> {
    state
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()
}

fn encode(values: &mut Vec<i64>, k: usize, state: &mut Vec<u8>) {
    values.sort_unstable_by(|a, b| b.cmp(a));
    values.truncate(k);
    state.clear();
    for v in values.iter() {
        state.extend_from_slice(&v.to_le_bytes());
    }
}

impl Aggregate for TopK {
    fn init(config: &Config, input: &Field) -> Result<Self, Error> {
        if input.data_type() != &DataType::Int64 {
            return Err(format!(
                "top-k needs a BIGINT column, '{}' is {}",
                input.name(),
                input.data_type()
            )
            .into());
        }
        let k = config["k"].as_u64().unwrap_or(3) as usize;
        if k == 0 {
            return Err("config.k must be at least 1".into());
        }
        Ok(TopK { k })
    }

    fn output_field(&self) -> Field {
        Field::new(
            "top",
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
            true,
        )
    }

    fn update(
        &mut self,
        state: &mut Vec<u8>,
        column: &ArrayRef,
        rows: &[usize],
    ) -> Result<(), Error> {
        let values = column
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or("the input column is not BIGINT")?;
        let mut top = decode(state);
        top.extend(
            rows.iter()
                .filter(|&&r| values.is_valid(r))
                .map(|&r| values.value(r)),
        );
        encode(&mut top, self.k, state);
        Ok(())
    }

    fn merge(&mut self, state: &mut Vec<u8>, other: &[u8]) -> Result<(), Error> {
        let mut top = decode(state);
        top.extend(decode(other));
        encode(&mut top, self.k, state);
        Ok(())
    }

    fn finish(&mut self, states: &[&[u8]]) -> Result<ArrayRef, Error> {
        let mut lists = ListBuilder::new(Int64Builder::new());
        for state in states {
            lists.values().append_slice(&decode(state));
            lists.append(true);
        }
        Ok(Arc::new(lists.finish()))
    }
}

export_aggregate!(TopK);
