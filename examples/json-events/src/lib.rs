//! The seeds' JSON pipeline as a Sluice transform:
//!
//! ```python
//! value_df = events.select(from_json(col("value").cast("string"), schema).alias("value"))
//! ... lower(city) as lower_city ...
//! output_df = ...selectExpr("to_json(named_struct('lower_city', lower_city, 'domain', domain, 'behavior', behavior)) as value")
//! ```
//!
//! Input: a string column `value` holding `{"city": .., "domain": .., "event": ..}`.
//! Output: a string column `value` holding `{"lower_city": .., "domain": .., "behavior": ..}`,
//! for the rows whose event is one of `config.events` (all events when not configured).

use sluice_guest_sdk::arrow_array::BinaryArray;
use sluice_guest_sdk::arrow_array::builder::StringBuilder;
use sluice_guest_sdk::prelude::*;

struct JsonEvents {
    parsed: SchemaRef,
    shaped: SchemaRef,
    output: SchemaRef,
    events: Option<Vec<String>>,
}

impl Transform for JsonEvents {
    fn init(config: &Config, input: SchemaRef) -> Result<Self, Error> {
        match input.field_with_name("value").map(|f| f.data_type()) {
            Ok(DataType::Utf8 | DataType::Binary) => {}
            _ => {
                return Err("the input needs a string or binary column `value`".into());
            }
        }
        let events = match &config["events"] {
            serde_json::Value::Null => None,
            serde_json::Value::Array(items) => Some(
                items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or("config.events must be strings")
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err("config.events must be an array of strings".into()),
        };
        let string = |name: &str| Field::new(name, DataType::Utf8, true);
        Ok(JsonEvents {
            parsed: Arc::new(Schema::new(vec![
                string("city"),
                string("domain"),
                string("event"),
            ])),
            shaped: Arc::new(Schema::new(vec![
                string("lower_city"),
                string("domain"),
                string("behavior"),
            ])),
            output: Arc::new(Schema::new(vec![string("value")])),
            events,
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
        // Kafka values are bytes: read them as UTF-8 text (an error names a bad row).
        let text = match batch.column_by_name("value").map(|c| c.data_type()) {
            Some(DataType::Binary) => {
                StringArray::try_from_binary(column::<BinaryArray>(&batch, "value")?.clone())?
            }
            _ => column::<StringArray>(&batch, "value")?.clone(),
        };
        let parsed = json::from_json(&text, self.parsed.clone())?;
        let city = column::<StringArray>(&parsed, "city")?;
        let event = column::<StringArray>(&parsed, "event")?;
        let keep: BooleanArray = event
            .iter()
            .map(|e| {
                Some(
                    e.is_some()
                        && self
                            .events
                            .as_ref()
                            .is_none_or(|allowed| allowed.iter().any(|a| Some(a.as_str()) == e)),
                )
            })
            .collect();
        // lower(city): one builder for the batch, no allocation per row.
        let mut lower = StringBuilder::with_capacity(city.len(), city.values().len());
        let mut scratch = String::new();
        for c in city.iter() {
            match c {
                Some(c) => {
                    scratch.clear();
                    scratch.extend(c.chars().flat_map(char::to_lowercase));
                    lower.append_value(&scratch);
                }
                None => lower.append_null(),
            }
        }
        let shaped = RecordBatch::try_new(
            self.shaped.clone(),
            vec![
                Arc::new(lower.finish()),
                parsed.column(1).clone(),
                parsed.column(2).clone(),
            ],
        )?;
        let shaped = filter_record_batch(&shaped, &keep)?;
        let value = json::to_json(&shaped)?;
        out.emit(&RecordBatch::try_new(
            self.output.clone(),
            vec![Arc::new(value)],
        )?)
    }
}

export_transform!(JsonEvents);
