//! A user-defined aggregate: the spread (largest minus smallest value) of a BIGINT column per
//! group. The host keeps each group's state as bytes in its checkpointed state store and calls
//! the aggregate once per batch with every group the batch touched:
//!
//! - `update` folds a group's new rows into its state,
//! - `merge` combines two states of one group,
//! - `finish` turns states into the output column.
//!
//! Here a state is 16 bytes: the smallest and the largest value seen, little-endian.

use sluice_guest_sdk::prelude::*;

struct Spread;

fn decode(state: &[u8]) -> Option<(i64, i64)> {
    let min = i64::from_le_bytes(state.get(0..8)?.try_into().ok()?);
    let max = i64::from_le_bytes(state.get(8..16)?.try_into().ok()?);
    Some((min, max))
}

fn encode(state: &mut Vec<u8>, (min, max): (i64, i64)) {
    state.clear();
    state.extend_from_slice(&min.to_le_bytes());
    state.extend_from_slice(&max.to_le_bytes());
}

fn widen(range: Option<(i64, i64)>, v: i64) -> (i64, i64) {
    match range {
        Some((min, max)) => (min.min(v), max.max(v)),
        None => (v, v),
    }
}

impl Aggregate for Spread {
    fn init(_config: &Config, input: &Field) -> Result<Self, Error> {
        if input.data_type() != &DataType::Int64 {
            return Err(format!(
                "spread needs a BIGINT column; '{}' is {}",
                input.name(),
                input.data_type()
            )
            .into());
        }
        Ok(Spread)
    }

    fn output_field(&self) -> Field {
        Field::new("spread", DataType::Int64, true)
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
        let mut range = decode(state);
        for &r in rows {
            if values.is_valid(r) {
                range = Some(widen(range, values.value(r)));
            }
        }
        if let Some(range) = range {
            encode(state, range);
        }
        Ok(())
    }

    fn merge(&mut self, state: &mut Vec<u8>, other: &[u8]) -> Result<(), Error> {
        if let Some((min, max)) = decode(other) {
            let range = widen(Some(widen(decode(state), min)), max);
            encode(state, range);
        }
        Ok(())
    }

    fn finish(&mut self, states: &[&[u8]]) -> Result<ArrayRef, Error> {
        let spreads: Int64Array = states
            .iter()
            .map(|s| decode(s).map(|(min, max)| max - min))
            .collect();
        Ok(Arc::new(spreads))
    }
}

export_aggregate!(Spread);
