//! `current_timestamp()`, `now()` and `current_date()` as a streaming query means them (Spark's
//! `CurrentBatchTimestamp`): the time of the micro-batch — the one `offsets/N` records, so a
//! batch re-run after a crash sees the same — not the moment the expression was planned or
//! evaluated. DataFusion folds its `now()` to one instant when it plans, which would freeze a
//! running query's clock at its start; these functions read the batch's time instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arrow_schema::{DataType, TimeUnit};
use datafusion_common::{Result, ScalarValue};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// The batch time a step's expressions see, ms since the epoch; set before each batch.
#[derive(Debug, Clone, Default)]
pub struct BatchClock(Arc<AtomicI64>);

impl BatchClock {
    /// Sets the time of the batch about to run.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::Relaxed);
    }

    fn ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Which value of the batch time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `current_timestamp()`, `now()`: a TIMESTAMP (UTC).
    Timestamp,
    /// `current_date()`: the DATE of it (UTC).
    Date,
}

/// One of the batch-time functions, bound to a step's clock.
#[derive(Debug)]
pub(super) struct BatchTime {
    name: &'static str,
    kind: Kind,
    clock: BatchClock,
    signature: Signature,
}

impl PartialEq for BatchTime {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.clock.0, &other.clock.0)
    }
}

impl Eq for BatchTime {}

impl std::hash::Hash for BatchTime {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// The batch-time functions' names and kinds.
const FUNCTIONS: [(&str, Kind); 3] = [
    ("current_timestamp", Kind::Timestamp),
    ("now", Kind::Timestamp),
    ("current_date", Kind::Date),
];

/// The names of the functions that read the batch time.
pub(super) const NAMES: [&str; 3] = [FUNCTIONS[0].0, FUNCTIONS[1].0, FUNCTIONS[2].0];

/// The functions that read the batch time, by name, bound to `clock`.
pub(super) fn functions(clock: &BatchClock) -> Vec<BatchTime> {
    FUNCTIONS
        .into_iter()
        .map(|(name, kind)| BatchTime {
            name,
            kind,
            clock: clock.clone(),
            // Volatile: never folded to a constant when the step is planned.
            signature: Signature::exact(Vec::new(), Volatility::Volatile),
        })
        .collect()
}

impl ScalarUDFImpl for BatchTime {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Date => DataType::Date32,
        })
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ms = self.clock.ms();
        Ok(ColumnarValue::Scalar(match self.kind {
            Kind::Timestamp => {
                ScalarValue::TimestampMicrosecond(Some(ms.saturating_mul(1000)), Some("UTC".into()))
            }
            Kind::Date => ScalarValue::Date32(Some(ms.div_euclid(86_400_000) as i32)),
        }))
    }
}
