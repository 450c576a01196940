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
//! - `q4-auction` and `q4-bid`, the two inputs of q4's and q9's join, cut to the columns those
//!   queries use (auctions: `id, category, date_time, expires`; bids: `auction, bidder,
//!   price, date_time`); `q4-in-time`, after the join, keeps the bids placed before the
//!   auction expired (`B.date_time BETWEEN A.date_time AND A.expires`; the join's time
//!   range already holds the lower bound).
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
    Q4Project,
    Q4InTime,
}

/// q8's tumbling windows, µs.
const Q8_WINDOW_US: i64 = 10_000_000;

struct Nexmark {
    query: Query,
    output: SchemaRef,
    /// The input columns `process` reads (ascending).
    reads: Vec<usize>,
    /// Where each output column comes from: an input column, or one computed here.
    columns: Vec<OutputColumn>,
}

/// An output column: an input column passed through by name, or computed by the guest with
/// the given field.
enum Out {
    Pass(&'static str),
    New(Field),
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
        use Out::{New, Pass};
        // Each query reads only what it computes or selects on; every other output column
        // is passed through by the host (`emit_rows`) and never crosses the boundary.
        let (query, reads, outputs): (Query, &[&str], Vec<Out>) = match config["query"].as_str() {
            Some("q1") => (
                Query::Q1,
                &["price"],
                vec![
                    Pass("auction"),
                    Pass("bidder"),
                    New(Field::new("price", DataType::Float64, true)),
                    Pass("date_time"),
                    Pass("extra"),
                ],
            ),
            Some("q2") => (Query::Q2, &["auction"], vec![Pass("auction"), Pass("price")]),
            Some("q3-person") => (
                Query::Q3Person,
                &["state"],
                vec![Pass("id"), Pass("name"), Pass("city"), Pass("state")],
            ),
            Some("q3-auction") => (
                Query::Q3Auction,
                &["category"],
                vec![Pass("id"), Pass("seller")],
            ),
            Some("q8-person") => (
                Query::Q8Person,
                &["date_time"],
                vec![
                    Pass("id"),
                    Pass("name"),
                    New(field("date_time")?.with_name("starttime")),
                    Pass("date_time"),
                ],
            ),
            Some("q8-auction") => (
                Query::Q8Auction,
                &["date_time"],
                vec![
                    Pass("seller"),
                    New(field("date_time")?.with_name("starttime")),
                    Pass("date_time"),
                ],
            ),
            Some("q4-auction") => (
                Query::Q4Project,
                &[],
                vec![
                    Pass("id"),
                    Pass("category"),
                    Pass("date_time"),
                    Pass("expires"),
                ],
            ),
            Some("q4-bid") => (
                Query::Q4Project,
                &[],
                vec![
                    Pass("auction"),
                    Pass("bidder"),
                    Pass("price"),
                    Pass("date_time"),
                ],
            ),
            Some("q4-in-time") => (
                Query::Q4InTime,
                &["expires", "bid_date_time"],
                vec![
                    Pass("id"),
                    Pass("category"),
                    Pass("date_time"),
                    Pass("expires"),
                    Pass("bidder"),
                    Pass("price"),
                    Pass("bid_date_time"),
                ],
            ),
            other => {
                return Err(format!(
                    "config.query must be q1, q2, q3-person, q3-auction, q4-auction, q4-bid, q4-in-time, q8-person or q8-auction, not {other:?}"
                )
                .into());
            }
        };
        let index = |name: &str| {
            input
                .index_of(name)
                .map_err(|_| Error(format!("the input has no column `{name}`")))
        };
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for out in outputs {
            match out {
                Pass(name) => {
                    fields.push(field(name)?);
                    columns.push(OutputColumn::Input(index(name)?));
                }
                New(f) => {
                    fields.push(f);
                    columns.push(OutputColumn::Computed);
                }
            }
        }
        let mut reads = reads.iter().map(|n| index(n)).collect::<Result<Vec<_>, _>>()?;
        reads.sort_unstable();
        Ok(Nexmark {
            query,
            output: Arc::new(Schema::new(fields)),
            reads,
            columns,
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn reads(&self) -> Option<Vec<usize>> {
        Some(self.reads.clone())
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
        let column = |name: &str| -> Result<ArrayRef, Error> {
            Ok(batch
                .column_by_name(name)
                .ok_or_else(|| format!("no {name} column"))?
                .clone())
        };
        // A selection of rows, and the columns computed here (in output order).
        let (keep, computed): (Option<BooleanArray>, Vec<ArrayRef>) = match self.query {
            Query::Q1 => {
                let euros: Float64Array = column("price")?
                    .as_primitive::<Int64Type>()
                    .unary(|cents| cents as f64 * 0.908);
                (None, vec![Arc::new(euros)])
            }
            Query::Q2 => {
                let keep: BooleanArray = column("auction")?
                    .as_primitive::<Int64Type>()
                    .unary::<_, Int64Type>(|a| a % 123)
                    .iter()
                    .map(|m| m.map(|m| m == 0))
                    .collect();
                (Some(keep), Vec::new())
            }
            Query::Q3Person => {
                let keep: BooleanArray = column("state")?
                    .as_string::<i32>()
                    .iter()
                    .map(|s| Some(matches!(s, Some("or" | "id" | "ca"))))
                    .collect();
                (Some(keep), Vec::new())
            }
            Query::Q3Auction => {
                let keep: BooleanArray = column("category")?
                    .as_primitive::<Int64Type>()
                    .iter()
                    .map(|c| Some(c == Some(10)))
                    .collect();
                (Some(keep), Vec::new())
            }
            Query::Q4Project => (None, Vec::new()),
            Query::Q4InTime => {
                use sluice_guest_sdk::arrow_array::types::TimestampMicrosecondType;
                let expires = column("expires")?;
                let placed = column("bid_date_time")?;
                let keep: BooleanArray = expires
                    .as_primitive::<TimestampMicrosecondType>()
                    .iter()
                    .zip(placed.as_primitive::<TimestampMicrosecondType>().iter())
                    .map(|(e, p)| Some(matches!((e, p), (Some(e), Some(p)) if p <= e)))
                    .collect();
                (Some(keep), Vec::new())
            }
            Query::Q8Person | Query::Q8Auction => {
                (None, vec![arrow_cast_window(&column("date_time")?)?])
            }
        };
        if computed.is_empty() {
            let inputs: Vec<usize> = self
                .columns
                .iter()
                .filter_map(|c| match c {
                    OutputColumn::Input(i) => Some(*i),
                    OutputColumn::Computed => None,
                })
                .collect();
            return out.emit_rows(keep.as_ref(), &inputs);
        }
        let fields: Vec<Field> = self
            .columns
            .iter()
            .zip(self.output.fields().iter())
            .filter(|(c, _)| matches!(c, OutputColumn::Computed))
            .map(|(_, f)| f.as_ref().clone())
            .collect();
        let computed = RecordBatch::try_new(Arc::new(Schema::new(fields)), computed)?;
        out.emit_rows_with(keep.as_ref(), &self.columns, &computed)
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
