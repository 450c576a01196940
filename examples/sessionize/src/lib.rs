//! Sessionization as a keyed processor: a session is a run of a key's events with gaps
//! shorter than `gapMs`; an event-time timer at each session's end closes it once the
//! watermark passes, and it is emitted as `key, window {start, end}, events` — the same rows
//! the built-in session window (`window = { column, gap }` with a count) gives, which the
//! tests check.
//!
//! State per key: the open session (value state) and sessions already ended by a later
//! event but not yet final (list state: the watermark has not passed their end). Events of a
//! key are expected in event-time order across batches (within a batch they are sorted).

use serde::{Deserialize, Serialize};
use sluice_guest_sdk::arrow_array::{StructArray, TimestampMicrosecondArray};
use sluice_guest_sdk::arrow_schema::Fields;
use sluice_guest_sdk::prelude::*;

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq)]
struct Session {
    start: i64,
    end: i64,
    events: i64,
}

struct Sessionize {
    gap: i64,
    time_column: String,
    open: ValueState<Json<Session>>,
    ended: ListState<Json<Session>>,
    output: SchemaRef,
    window: Fields,
    keys: Vec<u32>,
    sessions: Vec<Session>,
}

fn micros_utc(v: Vec<i64>) -> TimestampMicrosecondArray {
    TimestampMicrosecondArray::from(v).with_timezone("+00:00")
}

impl Processor for Sessionize {
    fn init(config: &Config, schemas: &Schemas, state: &mut StateDecl) -> Result<Self, Error> {
        if schemas.time_mode != TimeMode::EventTime {
            return Err("sessionize needs timeMode = \"eventTime\"".into());
        }
        let gap = config["gapMs"]
            .as_i64()
            .filter(|g| *g > 0)
            .ok_or("config needs a positive `gapMs`")?;
        let time_column = config["timeColumn"].as_str().unwrap_or("ts").to_owned();
        let ts = DataType::Timestamp(
            sluice_guest_sdk::arrow_schema::TimeUnit::Microsecond,
            Some("+00:00".into()),
        );
        let window = Fields::from(vec![
            Field::new("start", ts.clone(), false),
            Field::new("end", ts, false),
        ]);
        let mut fields: Vec<Field> = schemas
            .key
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        fields.push(Field::new(
            "window",
            DataType::Struct(window.clone()),
            false,
        ));
        fields.push(Field::new("events", DataType::Int64, false));
        Ok(Sessionize {
            gap,
            time_column,
            open: state.value("open", None)?,
            ended: state.list("ended", None)?,
            output: Arc::new(Schema::new(fields)),
            window,
            keys: Vec::new(),
            sessions: Vec::new(),
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn handle_rows(
        &mut self,
        _key: &Key,
        rows: &Rows,
        state: &mut KeyState,
        _out: &mut Output,
    ) -> Result<(), Error> {
        let (all, range) = rows.all();
        let times = column::<TimestampMicrosecondArray>(all, &self.time_column)?;
        let mut times: Vec<i64> = range
            .filter(|&i| times.is_valid(i))
            .map(|i| times.value(i) / 1000)
            .collect();
        times.sort_unstable();
        let mut open = state.get(&self.open)?.map(|s| s.0);
        for t in times {
            match &mut open {
                Some(s) if t < s.end => {
                    // Inside the gap: the session grows; its timer moves to the new end.
                    let end = s.end.max(t + self.gap);
                    if end != s.end {
                        state.delete_timer(s.end);
                        state.register_timer(end);
                    }
                    s.start = s.start.min(t);
                    s.end = end;
                    s.events += 1;
                }
                _ => {
                    // A new session; the previous one waits for the watermark to pass it.
                    if let Some(done) = open.take() {
                        state.append(&self.ended, &Json(done));
                    }
                    state.register_timer(t + self.gap);
                    open = Some(Session {
                        start: t,
                        end: t + self.gap,
                        events: 1,
                    });
                }
            }
        }
        if let Some(s) = open {
            state.set(&self.open, &Json(s));
        }
        Ok(())
    }

    fn handle_timer(
        &mut self,
        key: &Key,
        at_ms: i64,
        state: &mut KeyState,
        _out: &mut Output,
    ) -> Result<(), Error> {
        let ended = state.list(&self.ended)?;
        let (done, waiting): (Vec<_>, Vec<_>) = ended.into_iter().partition(|s| s.0.end == at_ms);
        for s in done {
            self.keys.push(key.index() as u32);
            self.sessions.push(s.0);
        }
        state.set_list(&self.ended, &waiting);
        if let Some(open) = state.get(&self.open)?.filter(|s| s.0.end == at_ms) {
            self.keys.push(key.index() as u32);
            self.sessions.push(open.0);
            state.clear(&self.open);
        }
        Ok(())
    }

    fn end_batch(&mut self, keys: &RecordBatch, out: &mut Output) -> Result<(), Error> {
        let sessions = std::mem::take(&mut self.sessions);
        let starts = micros_utc(sessions.iter().map(|s| s.start * 1000).collect());
        let ends = micros_utc(sessions.iter().map(|s| s.end * 1000).collect());
        let window = StructArray::try_new(
            self.window.clone(),
            vec![Arc::new(starts), Arc::new(ends)],
            None,
        )?;
        let events = Int64Array::from(sessions.iter().map(|s| s.events).collect::<Vec<_>>());
        out.emit_keyed(
            keys,
            std::mem::take(&mut self.keys),
            vec![Arc::new(window), Arc::new(events)],
        )
    }
}

export_processor!(Sessionize);
