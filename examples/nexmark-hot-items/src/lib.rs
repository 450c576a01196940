//! Nexmark q5, hot items, as a Wasm aggregate: over each window, the auction with the most
//! bids and how many it had.
//!
//! ```toml
//! [query.aggregate]
//! window = { column = "date_time", duration = "10 seconds", slide = "2 seconds" }
//! aggs = [{ module = "modules/nexmark_hot_items.wasm", column = "auction", as = "hot" }]
//! ```
//!
//! State per window: the bid count of every auction seen in it, as sorted (auction, count)
//! pairs of little-endian i64s; `finish` picks the largest count (the lowest auction id on a
//! tie, so the result does not depend on arrival order).

use std::collections::BTreeMap;

use sluice_guest_sdk::arrow_array::types::Int64Type;
use sluice_guest_sdk::arrow_array::{StructArray, builder::Int64Builder};
use sluice_guest_sdk::arrow_schema::Fields;
use sluice_guest_sdk::prelude::*;

struct HotItems {
    /// Reused between calls: the decoded counts of the group being updated.
    counts: BTreeMap<i64, i64>,
}

fn decode(state: &[u8], into: &mut BTreeMap<i64, i64>) {
    into.clear();
    for pair in state.chunks_exact(16) {
        let (a, c) = pair.split_at(8);
        let auction = i64::from_le_bytes(a.try_into().unwrap_or([0; 8]));
        let count = i64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        *into.entry(auction).or_default() += count;
    }
}

fn encode(counts: &BTreeMap<i64, i64>, state: &mut Vec<u8>) {
    state.clear();
    for (auction, count) in counts {
        state.extend_from_slice(&auction.to_le_bytes());
        state.extend_from_slice(&count.to_le_bytes());
    }
}

fn fields() -> Fields {
    Fields::from(vec![
        Field::new("auction", DataType::Int64, true),
        Field::new("bids", DataType::Int64, true),
    ])
}

impl Aggregate for HotItems {
    fn init(_config: &Config, input: &Field) -> Result<Self, Error> {
        if input.data_type() != &DataType::Int64 {
            return Err(format!(
                "hot items counts a BIGINT auction column, '{}' is {}",
                input.name(),
                input.data_type()
            )
            .into());
        }
        Ok(HotItems {
            counts: BTreeMap::new(),
        })
    }

    fn output_field(&self) -> Field {
        Field::new("hot", DataType::Struct(fields()), true)
    }

    fn update(
        &mut self,
        state: &mut Vec<u8>,
        column: &ArrayRef,
        rows: &[usize],
    ) -> Result<(), Error> {
        let auctions = column.as_primitive::<Int64Type>();
        decode(state, &mut self.counts);
        for &r in rows {
            if auctions.is_valid(r) {
                *self.counts.entry(auctions.value(r)).or_default() += 1;
            }
        }
        encode(&self.counts, state);
        Ok(())
    }

    fn merge(&mut self, state: &mut Vec<u8>, other: &[u8]) -> Result<(), Error> {
        let mut joined = state.clone();
        joined.extend_from_slice(other);
        decode(&joined, &mut self.counts);
        encode(&self.counts, state);
        Ok(())
    }

    fn finish(&mut self, states: &[&[u8]]) -> Result<ArrayRef, Error> {
        let mut auction = Int64Builder::with_capacity(states.len());
        let mut bids = Int64Builder::with_capacity(states.len());
        for state in states {
            let mut best: Option<(i64, i64)> = None;
            for pair in state.chunks_exact(16) {
                let (a, c) = pair.split_at(8);
                let a = i64::from_le_bytes(a.try_into().unwrap_or([0; 8]));
                let c = i64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
                // Pairs are sorted by auction: a strictly larger count wins, so ties keep the
                // lowest id.
                if best.is_none_or(|(_, bc)| c > bc) {
                    best = Some((a, c));
                }
            }
            auction.append_option(best.map(|b| b.0));
            bids.append_option(best.map(|b| b.1));
        }
        Ok(Arc::new(StructArray::try_new(
            fields(),
            vec![Arc::new(auction.finish()), Arc::new(bids.finish())],
            None,
        )?))
    }
}

export_aggregate!(HotItems);
