//! A keyed processor: per-key state in Wasm (Spark's `transformWithState`). The host groups
//! each batch's rows by the pipeline's `key` columns, keeps every key's state in its
//! checkpointed state store and calls the processor once per batch with the keys the batch
//! touched; the SDK turns that into one `handle_rows` per key (and `handle_timer` per fired
//! timer).
//!
//! Here: each user's number of orders and total amount, in two value states, emitted
//! (`user`, `orders`, `total`) whenever a batch changes them.

use sluice_guest_sdk::prelude::*;

struct Totals {
    orders: ValueState<i64>,
    total: ValueState<i64>,
    output: SchemaRef,
    // Output gathered across the batch's keys, emitted once in `end_batch`.
    keys: Vec<u32>,
    counts: Vec<i64>,
    sums: Vec<i64>,
}

impl Processor for Totals {
    fn init(_config: &Config, schemas: &Schemas, state: &mut StateDecl) -> Result<Self, Error> {
        schemas
            .input
            .index_of("amount")
            .map_err(|_| Error::from("the input needs an `amount` column"))?;
        let mut fields: Vec<Field> = schemas
            .key
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("orders", DataType::Int64, false));
        fields.push(Field::new("total", DataType::Int64, false));
        Ok(Totals {
            // A TTL would go here: `Some(Duration::from_secs(3600))` evicts an idle key.
            orders: state.value("orders", None)?,
            total: state.value("total", None)?,
            output: Arc::new(Schema::new(fields)),
            keys: Vec::new(),
            counts: Vec::new(),
            sums: Vec::new(),
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
        let (all, range) = rows.all();
        let amounts = column::<Int64Array>(all, "amount")?;
        let added: i64 = range.map(|i| amounts.value(i)).sum();
        let orders = state.get(&self.orders)?.unwrap_or(0) + rows.num_rows() as i64;
        let total = state.get(&self.total)?.unwrap_or(0) + added;
        state.set(&self.orders, &orders);
        state.set(&self.total, &total);
        self.keys.push(key.index() as u32);
        self.counts.push(orders);
        self.sums.push(total);
        Ok(())
    }

    fn end_batch(&mut self, keys: &RecordBatch, out: &mut Output) -> Result<(), Error> {
        out.emit_keyed(
            keys,
            std::mem::take(&mut self.keys),
            vec![
                Arc::new(Int64Array::from(std::mem::take(&mut self.counts))),
                Arc::new(Int64Array::from(std::mem::take(&mut self.sums))),
            ],
        )
    }
}

export_processor!(Totals);
