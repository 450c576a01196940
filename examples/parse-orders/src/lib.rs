//! The parsing step of the seeds' order-analytics pipeline:
//!
//! ```python
//! orders_df = (raw_df
//!     .select(from_json(col("value").cast("string"), order_schema).alias("data"))
//!     .select("data.*"))
//! ```
//!
//! Input: a string or binary column `value` holding JSON orders (Kafka's value, or a text
//! file's lines). Output: the columns of `order_schema` — `order_id`, `user_id`, `amount`
//! (double), `category`, `order_time` (timestamp, from an RFC 3339 string) — ready for the
//! host's watermark and window on `order_time`.

use sluice_guest_sdk::arrow_array::BinaryArray;
use sluice_guest_sdk::arrow_schema::TimeUnit;
use sluice_guest_sdk::prelude::*;

struct ParseOrders {
    orders: SchemaRef,
}

impl Transform for ParseOrders {
    fn init(_config: &Config, input: SchemaRef) -> Result<Self, Error> {
        match input.field_with_name("value").map(|f| f.data_type()) {
            Ok(DataType::Utf8 | DataType::Binary) => {}
            _ => return Err("the input needs a string or binary column `value`".into()),
        }
        let string = |name: &str| Field::new(name, DataType::Utf8, true);
        Ok(ParseOrders {
            orders: Arc::new(Schema::new(vec![
                string("order_id"),
                string("user_id"),
                Field::new("amount", DataType::Float64, true),
                string("category"),
                Field::new(
                    "order_time",
                    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                    true,
                ),
            ])),
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.orders.clone()
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
        let text = match batch.column_by_name("value").map(|c| c.data_type()) {
            Some(DataType::Binary) => {
                StringArray::try_from_binary(column::<BinaryArray>(&batch, "value")?.clone())?
            }
            _ => column::<StringArray>(&batch, "value")?.clone(),
        };
        out.emit(&json::from_json(&text, self.orders.clone())?)
    }
}

export_transform!(ParseOrders);
