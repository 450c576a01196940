//! Nexmark's stateless queries over the bid stream (`format = "nexmark"`, `table = "bid"`),
//! chosen by `config.query`:
//!
//! - `q1`, currency conversion: `SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid`
//!   (dollars to euros; `price` becomes a DOUBLE);
//! - `q2`, selection: `SELECT auction, price FROM bid WHERE auction % 123 = 0`;
//! - `q3-person` and `q3-auction`, the two inputs of q3's join (`table = "person"` and
//!   `"auction"`): `SELECT id, name, city, state FROM person WHERE state IN ('or', 'id', 'ca')`
//!   and `SELECT id, seller FROM auction WHERE category = 10` (the generator writes states in
//!   lower case);
//! - `q8-person` and `q8-auction`, the two inputs of q8's join: each row with the start of
//!   its 10-second tumbling window, `starttime` (people: `id, name, starttime, date_time`;
//!   auctions: `seller, starttime, date_time`), so the join can match on it.
//!
//! One call per record batch; each output column is built in one pass, with no per-row
//! allocation.

use sluice_guest_sdk::arrow_array::types::Int64Type;
use sluice_guest_sdk::prelude::*;

enum Query {
    Q1,
    Q2,
    Q3Person,
    Q3Auction,
    Q8Person,
    Q8Auction,
}

/// q8's tumbling windows, µs.
const Q8_WINDOW_US: i64 = 10_000_000;

struct Nexmark {
    query: Query,
    output: SchemaRef,
}

impl Transform for Nexmark {
    fn init(config: &Config, input: SchemaRef) -> Result<Self, Error> {
        let query = config["query"].as_str().unwrap_or_default();
        if matches!(query, "q1" | "q2") {
            for (name, ty) in [("auction", DataType::Int64), ("price", DataType::Int64)] {
                match input.field_with_name(name) {
                    Ok(f) if f.data_type() == &ty => {}
                    _ => {
                        return Err(format!(
                            "the input needs a BIGINT column `{name}`: read a Nexmark source with table = \"bid\""
                        )
                        .into());
                    }
                }
            }
        }
        let field = |name: &str| -> Result<Field, Error> {
            Ok(input
                .field_with_name(name)
                .map_err(|_| format!("the input has no column `{name}`"))?
                .clone())
        };
        let (query, fields) = match config["query"].as_str() {
            Some("q1") => (
                Query::Q1,
                vec![
                    field("auction")?,
                    field("bidder")?,
                    Field::new("price", DataType::Float64, true),
                    field("date_time")?,
                    field("extra")?,
                ],
            ),
            Some("q2") => (Query::Q2, vec![field("auction")?, field("price")?]),
            Some("q3-person") => (
                Query::Q3Person,
                vec![
                    field("id")?,
                    field("name")?,
                    field("city")?,
                    field("state")?,
                ],
            ),
            Some("q3-auction") => (Query::Q3Auction, vec![field("id")?, field("seller")?]),
            Some("q8-person") => (
                Query::Q8Person,
                vec![
                    field("id")?,
                    field("name")?,
                    field("date_time")?.with_name("starttime"),
                    field("date_time")?,
                ],
            ),
            Some("q8-auction") => (
                Query::Q8Auction,
                vec![
                    field("seller")?,
                    field("date_time")?.with_name("starttime"),
                    field("date_time")?,
                ],
            ),
            other => {
                return Err(format!(
                    "config.query must be q1, q2, q3-person, q3-auction, q8-person or q8-auction, not {other:?}"
                )
                .into());
            }
        };
        Ok(Nexmark {
            query,
            output: Arc::new(Schema::new(fields)),
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
        let column = |name: &str| -> Result<ArrayRef, Error> {
            Ok(batch
                .column_by_name(name)
                .ok_or_else(|| format!("no {name} column"))?
                .clone())
        };
        match self.query {
            Query::Q1 => {
                let price = column("price")?;
                let euros: Float64Array = price
                    .as_primitive::<Int64Type>()
                    .unary(|cents| cents as f64 * 0.908);
                out.emit(&RecordBatch::try_new(
                    self.output.clone(),
                    vec![
                        column("auction")?,
                        column("bidder")?,
                        Arc::new(euros),
                        column("date_time")?,
                        column("extra")?,
                    ],
                )?)
            }
            Query::Q2 => {
                let auction = column("auction")?;
                let keep: BooleanArray = auction
                    .as_primitive::<Int64Type>()
                    .unary::<_, Int64Type>(|a| a % 123)
                    .iter()
                    .map(|m| m.map(|m| m == 0))
                    .collect();
                let selected = RecordBatch::try_new(
                    self.output.clone(),
                    vec![column("auction")?, column("price")?],
                )?;
                out.emit(&filter_record_batch(&selected, &keep)?)
            }
            Query::Q3Person => {
                let state = column("state")?;
                let keep: BooleanArray = state
                    .as_string::<i32>()
                    .iter()
                    .map(|s| Some(matches!(s, Some("or" | "id" | "ca"))))
                    .collect();
                let selected = RecordBatch::try_new(
                    self.output.clone(),
                    vec![column("id")?, column("name")?, column("city")?, state],
                )?;
                out.emit(&filter_record_batch(&selected, &keep)?)
            }
            Query::Q8Person | Query::Q8Auction => {
                let time = column("date_time")?;
                let start = arrow_cast_window(&time)?;
                let columns = match self.query {
                    Query::Q8Person => vec![column("id")?, column("name")?, start, time],
                    _ => vec![column("seller")?, start, time],
                };
                out.emit(&RecordBatch::try_new(self.output.clone(), columns)?)
            }
            Query::Q3Auction => {
                let category = column("category")?;
                let keep: BooleanArray = category
                    .as_primitive::<Int64Type>()
                    .iter()
                    .map(|c| Some(c == Some(10)))
                    .collect();
                let selected = RecordBatch::try_new(
                    self.output.clone(),
                    vec![column("id")?, column("seller")?],
                )?;
                out.emit(&filter_record_batch(&selected, &keep)?)
            }
        }
    }
}

/// The start of each row's 10-second window, in the time column's own type.
fn arrow_cast_window(time: &ArrayRef) -> Result<ArrayRef, Error> {
    use sluice_guest_sdk::arrow_array::TimestampMicrosecondArray;
    let t = time
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or("date_time is not a microsecond TIMESTAMP")?;
    let start: TimestampMicrosecondArray = t
        .unary::<_, sluice_guest_sdk::arrow_array::types::TimestampMicrosecondType>(|us| {
            us - us.rem_euclid(Q8_WINDOW_US)
        })
        .with_timezone_opt(t.timezone().map(Arc::<str>::from));
    Ok(Arc::new(start))
}

export_transform!(Nexmark);
