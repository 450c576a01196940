//! Deduplication: Spark's `dropDuplicates(columns)` and `dropDuplicatesWithinWatermark(columns)`.
//!
//! The state is the set of keys seen (Arrow row encoding of the columns). With a watermark
//! on an event-time column among the keys, keys behind the watermark are evicted and rows
//! behind it dropped, so the state stays bounded. `withinWatermark` keeps a key until its
//! event time plus the watermark delay has passed, whatever the other columns say.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{Schema, SchemaRef};

use super::{BatchClock, SpecProblem, StateOperatorProgress, StatefulOperator};
use crate::error::{Error, Result};
use crate::state::{StateStore, layout};

/// The state store's name for deduplication (`state/dedup/` in the checkpoint).
pub const STATE_NAME: &str = "dedup";
use crate::watermark::{WatermarkSpec, event_times};

/// `[query.dropDuplicates]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupSpec {
    /// The columns that make a row a duplicate (all columns when empty).
    pub columns: Vec<String>,
    /// `dropDuplicatesWithinWatermark`: a key expires `delay` after its event time.
    pub within_watermark: bool,
}

/// The deduplication operator.
pub struct Dedup {
    spec: DedupSpec,
    schema: SchemaRef,
    key_indices: Vec<usize>,
    converter: RowConverter,
    watermark: Option<WatermarkSpec>,
    /// Whether the event-time column is one of the keys (so keys can expire).
    event_time_in_key: bool,
    store: StateStore,
    /// Key → event time (µs) or expiry (µs, within watermark); `i64::MAX` when it never expires.
    seen: HashMap<Box<[u8]>, i64>,
    /// Bytes of the keys in `seen`, kept as keys come and go (for the memory figure).
    seen_key_bytes: usize,
    /// Keys this batch added (written to the state delta at commit).
    added: KeyList,
    removed: Vec<Box<[u8]>>,
    stats: StateOperatorProgress,
}

/// Keys in one buffer with their end offsets: a batch's new keys cost one growing buffer,
/// not an allocation each.
#[derive(Default)]
struct KeyList {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl KeyList {
    fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.bytes[s..e])
    }
}

impl DedupSpec {
    /// Checks that every key column is among the columns reaching the operator.
    pub fn check_input(&self, schema: &Schema) -> std::result::Result<(), SpecProblem> {
        SpecProblem::missing_column(schema, &self.columns, "dropDuplicates.columns")
    }
}

impl Dedup {
    /// Builds the operator for input `schema`, with its state in partition `partition` under
    /// `checkpoint`.
    pub fn new(
        spec: DedupSpec,
        schema: SchemaRef,
        watermark: Option<WatermarkSpec>,
        checkpoint: &crate::storage::Location,
        operator: &str,
        partition: usize,
    ) -> Result<Self> {
        spec.check_input(&schema)?;
        let columns: Vec<String> = if spec.columns.is_empty() {
            schema.fields().iter().map(|f| f.name().clone()).collect()
        } else {
            spec.columns.clone()
        };
        let key_indices = columns
            .iter()
            .map(|c| {
                schema.index_of(c).map_err(|_| Error::Data {
                    context: format!("dropDuplicates column '{c}'"),
                    message: "is not among the query's columns".into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let fields = key_indices
            .iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields).map_err(|e| Error::data("dropDuplicates", e))?;
        let event_time_in_key = watermark
            .as_ref()
            .is_some_and(|w| columns.contains(&w.column));
        let key_schema = schema
            .project(&key_indices)
            .map_err(|e| Error::data("dropDuplicates", e))?;
        let store = StateStore::open_partition(checkpoint, operator, partition, 10)?;
        layout::write(
            checkpoint,
            operator,
            &serde_json::json!({
                "keySchema": layout::schema_hex(&key_schema),
                "withinWatermark": spec.within_watermark,
            }),
        )?;
        Ok(Dedup {
            store,
            spec,
            schema,
            key_indices,
            converter,
            watermark,
            event_time_in_key,
            seen: HashMap::new(),
            seen_key_bytes: 0,
            added: KeyList::default(),
            removed: Vec::new(),
            stats: StateOperatorProgress {
                operator_name: "dedupe".into(),
                ..Default::default()
            },
        })
    }

    fn expires(&self) -> bool {
        self.watermark.is_some() && (self.event_time_in_key || self.spec.within_watermark)
    }
}

impl StatefulOperator for Dedup {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn restore(&mut self, version: Option<u64>) -> Result<()> {
        self.seen = self
            .store
            .load(version)?
            .into_iter()
            .map(|(k, v)| {
                let t = v
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(i64::from_le_bytes)
                    .unwrap_or(i64::MAX);
                (k, t)
            })
            .collect();
        self.seen_key_bytes = self.seen.keys().map(|k| k.len()).sum();
        Ok(())
    }

    fn process(&mut self, clock: BatchClock, input: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let watermarks = clock.watermarks;
        let late_us = watermarks.late_ms.saturating_mul(1000);
        let wm_us = watermarks.eviction_ms.saturating_mul(1000);
        self.stats.num_rows_dropped_by_watermark = 0;
        self.added.clear();
        self.removed.clear();
        let delay = self
            .watermark
            .as_ref()
            .map_or(Duration::ZERO, |w| w.delay)
            .as_micros() as i64;
        let mut out = Vec::with_capacity(input.len());
        for batch in input {
            let columns: Vec<_> = self
                .key_indices
                .iter()
                .map(|&i| batch.column(i).clone())
                .collect();
            let rows = self
                .converter
                .convert_columns(&columns)
                .map_err(|e| Error::data("dropDuplicates", e))?;
            let times = match &self.watermark {
                Some(w) => Some(event_times(&batch, &w.column)?),
                None => None,
            };
            let mut keep = Vec::with_capacity(batch.num_rows());
            for (i, row) in rows.iter().enumerate() {
                let t = times
                    .as_ref()
                    .and_then(|ts| (!ts.is_null(i)).then(|| ts.value(i)));
                if let (Some(t), true) = (t, self.expires())
                    && watermarks.late_ms > 0
                    && t <= late_us
                {
                    self.stats.num_rows_dropped_by_watermark += 1;
                    keep.push(false);
                    continue;
                }
                let key = row.as_ref();
                if self.seen.contains_key(key) {
                    keep.push(false);
                    continue;
                }
                let stamp = match (self.expires(), t) {
                    (true, Some(t)) if self.spec.within_watermark => t + delay,
                    (true, Some(t)) => t,
                    _ => i64::MAX,
                };
                self.seen.insert(key.into(), stamp);
                self.seen_key_bytes += key.len();
                self.added.push(key);
                keep.push(true);
            }
            let mask = BooleanArray::from(keep);
            out.push(
                arrow_select::filter::filter_record_batch(&batch, &mask)
                    .map_err(|e| Error::data("dropDuplicates", e))?,
            );
        }
        // Evict keys the watermark has passed.
        if self.expires() && watermarks.eviction_ms > 0 {
            // Moved out of the map, not copied.
            self.removed = self
                .seen
                .extract_if(|_, t| *t <= wm_us)
                .map(|(k, _)| k)
                .collect();
            self.seen_key_bytes -= self.removed.iter().map(|k| k.len()).sum::<usize>();
        }
        Ok(out)
    }

    fn commit(&mut self, batch_id: u64) -> Result<()> {
        let started = Instant::now();
        let (seen, added, removed) = (&self.seen, &self.added, &self.removed);
        self.store.commit(
            batch_id,
            |w| {
                for k in added.iter() {
                    if let Some(t) = seen.get(k) {
                        w.put(k, |b| b.extend_from_slice(&t.to_le_bytes()))?;
                    }
                }
                for k in removed {
                    w.remove(k)?;
                }
                Ok(())
            },
            |w| {
                for (k, t) in seen {
                    w.put(k, |b| b.extend_from_slice(&t.to_le_bytes()))?;
                }
                Ok(())
            },
        )?;
        self.stats.num_rows_total = self.seen.len() as u64;
        self.stats.num_rows_updated = self.added.len() as u64;
        self.stats.num_rows_removed = self.removed.len() as u64;
        self.stats.memory_used_bytes = (self.seen_key_bytes + self.seen.len() * 48) as u64;
        self.stats.commit_time_ms = started.elapsed().as_millis() as u64;
        Ok(())
    }

    fn purge(&mut self, keep_from: u64) -> Result<()> {
        self.store.purge(keep_from)
    }

    fn progress(&self) -> StateOperatorProgress {
        self.stats.clone()
    }

    fn wants_no_data_batches(&self) -> bool {
        self.expires()
    }
}

/// The keys seen after batch `version` as JSON rows (for `sluice state show`): the key
/// columns and, when the key can expire, the event time (or, within the watermark, the
/// expiry) it is kept by.
pub fn state_rows(
    checkpoint: &crate::storage::Location,
    operator: &str,
    version: u64,
    matches: &dyn Fn(&serde_json::Map<String, serde_json::Value>) -> bool,
) -> Result<Vec<serde_json::Value>> {
    let corrupt = |message: String| layout::corrupt(checkpoint, operator, message);
    let (spec, schema) = layout::read_with_keys(checkpoint, operator)?;
    let within = spec["withinWatermark"].as_bool().unwrap_or(false);
    let state = StateStore::load_all_sorted(checkpoint, operator, version)?;
    let keys = layout::keys_as_json(&schema, state.iter().map(|(k, _)| &k[..])).map_err(corrupt)?;
    let mut rows = Vec::new();
    for ((_, value), key) in state.iter().zip(keys) {
        if !matches(&key) {
            continue;
        }
        let mut row = serde_json::json!({ "operator": operator, "key": key });
        let t = value
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_le_bytes)
            .unwrap_or(i64::MAX);
        if t != i64::MAX {
            row[if within { "expiresAt" } else { "eventTime" }] = layout::iso_us(t);
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::KeyList;

    #[test]
    fn a_key_list_gives_back_each_key_in_order() {
        let mut list = KeyList::default();
        for k in [&b"ab"[..], b"", b"cde"] {
            list.push(k);
        }
        assert_eq!(list.len(), 3);
        assert_eq!(list.iter().collect::<Vec<_>>(), [&b"ab"[..], b"", b"cde"]);
        list.clear();
        assert_eq!(list.iter().count(), 0);
    }
}
