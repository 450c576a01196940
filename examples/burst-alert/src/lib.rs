//! An alert when a key has more than `k` events within `windowMs` of processing time: the
//! first event of a key registers a processing-time timer `windowMs` ahead, which resets the
//! key's count when it fires. One alert per key and window, at the event that passes `k`.
//!
//! Pipeline: `timeMode = "processingTime"`, config `{ k = 100, windowMs = 60000 }`.
//! Output: the key columns, `events` (the count when it passed `k`) and `window_start`
//! (processing time, ms, when the key's window opened).

use sluice_guest_sdk::prelude::*;

struct BurstAlert {
    k: i64,
    window: i64,
    count: ValueState<i64>,
    opened: ValueState<i64>,
    alerted: ValueState<i64>,
    output: SchemaRef,
    keys: Vec<u32>,
    counts: Vec<i64>,
    starts: Vec<i64>,
}

impl Processor for BurstAlert {
    fn init(config: &Config, schemas: &Schemas, state: &mut StateDecl) -> Result<Self, Error> {
        if schemas.time_mode != TimeMode::ProcessingTime {
            return Err("burst-alert needs timeMode = \"processingTime\"".into());
        }
        let mut fields: Vec<Field> = schemas
            .key
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("events", DataType::Int64, false));
        fields.push(Field::new("window_start", DataType::Int64, false));
        Ok(BurstAlert {
            k: config["k"].as_i64().unwrap_or(100),
            window: config["windowMs"]
                .as_i64()
                .filter(|w| *w > 0)
                .unwrap_or(60_000),
            count: state.value("count", None)?,
            opened: state.value("opened", None)?,
            alerted: state.value("alerted", None)?,
            output: Arc::new(Schema::new(fields)),
            keys: Vec::new(),
            counts: Vec::new(),
            starts: Vec::new(),
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
        let now = state.clock().processing_time_ms;
        // A window whose timer fires in this very batch is over for these rows too (rows are
        // handled before timers): start the new one now.
        if state
            .get(&self.opened)?
            .is_some_and(|t| t + self.window <= now)
        {
            state.clear_all();
        }
        let opened = match state.get(&self.opened)? {
            Some(t) => t,
            None => {
                state.register_timer(now + self.window);
                state.set(&self.opened, &now);
                now
            }
        };
        let count = state.get(&self.count)?.unwrap_or(0) + rows.num_rows() as i64;
        state.set(&self.count, &count);
        if count > self.k && state.get(&self.alerted)?.is_none() {
            state.set(&self.alerted, &1);
            self.keys.push(key.index() as u32);
            self.counts.push(count);
            self.starts.push(opened);
        }
        Ok(())
    }

    fn handle_timer(
        &mut self,
        _key: &Key,
        at_ms: i64,
        state: &mut KeyState,
        _out: &mut Output,
    ) -> Result<(), Error> {
        // The window is over: the key starts afresh (and leaves the state store) — unless
        // its rows of this batch already opened the next one.
        if state.get(&self.opened)? == Some(at_ms - self.window) {
            state.clear_all();
        }
        Ok(())
    }

    fn end_batch(&mut self, keys: &RecordBatch, out: &mut Output) -> Result<(), Error> {
        out.emit_keyed(
            keys,
            std::mem::take(&mut self.keys),
            vec![
                Arc::new(Int64Array::from(std::mem::take(&mut self.counts))),
                Arc::new(Int64Array::from(std::mem::take(&mut self.starts))),
            ],
        )
    }
}

export_processor!(BurstAlert);
