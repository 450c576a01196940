//! Nexmark's stateless queries over the bid stream (`format = "nexmark"`, `table = "bid"`),
//! chosen by `config.query`:
//!
//! - `q1`, currency conversion: `SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid`
//!   (dollars to euros; `price` becomes a DOUBLE);
//! - `q2`, selection: `SELECT auction, price FROM bid WHERE auction % 123 = 0`.
//!
//! One call per record batch; each output column is built in one pass, with no per-row
//! allocation.

use sluice_guest_sdk::arrow_array::types::Int64Type;
use sluice_guest_sdk::prelude::*;

enum Query {
    Q1,
    Q2,
}

struct Nexmark {
    query: Query,
    output: SchemaRef,
}

impl Transform for Nexmark {
    fn init(config: &Config, input: SchemaRef) -> Result<Self, Error> {
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
            other => {
                return Err(format!("config.query must be \"q1\" or \"q2\", not {other:?}").into());
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
        let auction = batch
            .column_by_name("auction")
            .ok_or("no auction column")?
            .as_primitive::<Int64Type>();
        let price = batch
            .column_by_name("price")
            .ok_or("no price column")?
            .as_primitive::<Int64Type>();
        let column = |name: &str| -> Result<ArrayRef, Error> {
            Ok(batch
                .column_by_name(name)
                .ok_or_else(|| format!("no {name} column"))?
                .clone())
        };
        match self.query {
            Query::Q1 => {
                let euros: Float64Array = price.unary(|cents| cents as f64 * 0.908);
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
                let keep: BooleanArray = auction
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
        }
    }
}

export_transform!(Nexmark);
