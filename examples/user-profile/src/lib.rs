//! Seed 004's user profile as a keyed processor: each user's last `n` events in event-time
//! order, emitted whenever they change, in list state with a TTL so users who go quiet leave
//! the state store (Spark's `transformWithState` with `ListState` and TTL).
//!
//! Pipeline (`examples/user-profile.toml`): `key = ["user_id"]`, `timeMode = "eventTime"`
//! (the TTL then follows the watermark, so a re-run gives the same result), config
//! `{ n = 3, idleTimeoutMs = 3600000 }`.
//!
//! Output per changed user: `user_id`, `last_events` (a JSON array of `{event, ts}`, oldest
//! first) and `total` (events since the profile was created: after a TTL eviction the user
//! starts afresh).

use serde::{Deserialize, Serialize};
use sluice_guest_sdk::arrow_array::TimestampMicrosecondArray;
use sluice_guest_sdk::prelude::*;

#[derive(Serialize, Deserialize, Clone)]
struct Event {
    event: String,
    ts: i64,
}

struct UserProfile {
    n: usize,
    events: ListState<Json<Event>>,
    total: ValueState<i64>,
    output: SchemaRef,
    keys: Vec<u32>,
    last: Vec<String>,
    totals: Vec<i64>,
}

impl Processor for UserProfile {
    fn init(config: &Config, schemas: &Schemas, state: &mut StateDecl) -> Result<Self, Error> {
        let n = config["n"].as_u64().unwrap_or(3).max(1) as usize;
        let idle = Duration::from_millis(config["idleTimeoutMs"].as_u64().unwrap_or(3_600_000));
        for c in ["event", "ts"] {
            schemas
                .input
                .index_of(c)
                .map_err(|_| Error(format!("the input needs a column '{c}'")))?;
        }
        let mut fields: Vec<Field> = schemas
            .key
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("last_events", DataType::Utf8, false));
        fields.push(Field::new("total", DataType::Int64, false));
        Ok(UserProfile {
            n,
            events: state.list("events", Some(idle))?,
            total: state.value("total", Some(idle))?,
            output: Arc::new(Schema::new(fields)),
            keys: Vec::new(),
            last: Vec::new(),
            totals: Vec::new(),
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn handle_rows(
        &mut self,
        key: &Key,
        rows: &Rows,
        state: &mut KeyState,
        _out: &mut Output,
    ) -> Result<(), Error> {
        let rows = rows.batch();
        let names = column::<StringArray>(&rows, "event")?;
        let times = column::<TimestampMicrosecondArray>(&rows, "ts")?;
        let mut events: Vec<Event> = state.list(&self.events)?.into_iter().map(|e| e.0).collect();
        for (name, ts) in names.iter().zip(times.iter()) {
            if let (Some(name), Some(ts)) = (name, ts) {
                events.push(Event {
                    event: name.to_owned(),
                    ts: ts / 1000,
                });
            }
        }
        // Event-time order (stable: equal times keep arrival order), the newest n kept.
        events.sort_by_key(|e| e.ts);
        let keep = events.split_off(events.len().saturating_sub(self.n));
        let total = state.get(&self.total)?.unwrap_or(0) + rows.num_rows() as i64;
        self.keys.push(key.index() as u32);
        self.last.push(serde_json::to_string(&keep)?);
        self.totals.push(total);
        let keep: Vec<Json<Event>> = keep.into_iter().map(Json).collect();
        state.set_list(&self.events, &keep);
        state.set(&self.total, &total);
        Ok(())
    }

    fn end_batch(&mut self, keys: &RecordBatch, out: &mut Output) -> Result<(), Error> {
        out.emit_keyed(
            keys,
            std::mem::take(&mut self.keys),
            vec![
                Arc::new(StringArray::from(std::mem::take(&mut self.last))),
                Arc::new(Int64Array::from(std::mem::take(&mut self.totals))),
            ],
        )
    }
}

export_processor!(UserProfile);
