//! Running one batch's partitions at once.
//!
//! A batch's partitions — the files it reads, the record batches its Wasm steps get — are
//! split into at most `parallelism` contiguous runs, and each run is one task on the
//! process's worker pool (rayon's global pool: one thread per core, shared by every query of
//! the process, so several queries share the cores instead of each spawning its own threads).
//! Results come back in partition order: what a batch produces never depends on which
//! thread ran what, so a re-run batch writes the same rows in the same files.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use rayon::prelude::*;

/// How busy a batch kept the workers: tasks run on the pool and their CPU time. The query
/// thread installs one for the batch ([`metered`]); the helpers below add to it.
#[derive(Debug, Default)]
pub struct Meter {
    tasks: AtomicU64,
    cpu_ns: AtomicU64,
}

impl Meter {
    /// Tasks run on the pool.
    pub fn tasks(&self) -> u64 {
        self.tasks.load(Ordering::Relaxed)
    }

    /// Their CPU time, ms.
    pub fn cpu_ms(&self) -> f64 {
        self.cpu_ns.load(Ordering::Relaxed) as f64 / 1e6
    }
}

thread_local! {
    static METER: RefCell<Option<Arc<Meter>>> = const { RefCell::new(None) };
}

/// Runs `f` (a batch, on its query's thread) with `meter` counting the pool's work for it.
pub fn metered<R>(meter: &Arc<Meter>, f: impl FnOnce() -> R) -> R {
    let before = METER.with_borrow_mut(|m| m.replace(meter.clone()));
    let out = f();
    METER.with_borrow_mut(|m| *m = before);
    out
}

/// CPU time of the calling thread so far, ns (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer; nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return 0;
    }
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

/// Wraps a task so its CPU time goes to the meter of the batch that spawned it (read on the
/// spawning thread, where it is installed).
pub fn task<A, R>(f: impl Fn(A) -> R + Sync) -> impl Fn(A) -> R + Sync {
    let meter = METER.with_borrow(|m| m.clone());
    move |a| {
        let started = thread_cpu_ns();
        let out = f(a);
        if let Some(m) = &meter {
            m.tasks.fetch_add(1, Ordering::Relaxed);
            m.cpu_ns
                .fetch_add(thread_cpu_ns().saturating_sub(started), Ordering::Relaxed);
        }
        out
    }
}

/// The default `parallelism` of a query: `SLUICE_PARALLELISM` when set (a positive number),
/// else the cores this process may use.
pub fn default_parallelism() -> usize {
    let cores = || std::thread::available_parallelism().map_or(1, |n| n.get());
    match std::env::var("SLUICE_PARALLELISM") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                tracing::warn!(
                    value = %v,
                    "SLUICE_PARALLELISM is not a positive number; using the cores"
                );
                cores()
            }
        },
        Err(_) => cores(),
    }
}

/// Splits `items` into at most `n` contiguous runs of near-equal length (none when empty).
pub fn runs<T>(items: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let len = items.len();
    let n = n.clamp(1, len.max(1));
    let mut out = Vec::with_capacity(n);
    let mut items = items.into_iter();
    for i in 0..n {
        // The first `len % n` runs take one more.
        let size = len / n + usize::from(i < len % n);
        out.push(items.by_ref().take(size).collect());
    }
    out.retain(|r: &Vec<T>| !r.is_empty());
    out
}

/// Cuts `batches` into chunks of `rows` rows each (the last may be shorter), counted over
/// their concatenation, as zero-copy slices: the chunks depend only on the rows' order, not
/// on where the record batches began and ended.
pub fn chunks_of_rows(batches: &[RecordBatch], rows: usize) -> Vec<Vec<RecordBatch>> {
    let rows = rows.max(1);
    let mut chunks = Vec::new();
    let mut current: Vec<RecordBatch> = Vec::new();
    let mut room = rows;
    for batch in batches {
        let mut at = 0;
        while at < batch.num_rows() {
            let len = room.min(batch.num_rows() - at);
            current.push(if len == batch.num_rows() {
                batch.clone()
            } else {
                batch.slice(at, len)
            });
            at += len;
            room -= len;
            if room == 0 {
                chunks.push(std::mem::take(&mut current));
                room = rows;
            }
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Applies `f` to every item, on up to `parallelism` tasks at once, and returns the results
/// in item order — or the first error, by item order.
pub fn try_map<T, R, E>(
    items: Vec<T>,
    parallelism: usize,
    f: impl Fn(T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E>
where
    T: Send,
    R: Send,
    E: Send,
{
    if parallelism <= 1 || items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    let per_run: Vec<Result<Vec<R>, E>> = runs(items, parallelism)
        .into_par_iter()
        .map(task(|run: Vec<T>| run.into_iter().map(&f).collect()))
        .collect();
    let mut out = Vec::new();
    for run in per_run {
        out.extend(run?);
    }
    Ok(out)
}

/// Runs `f` on each worker with its run of `items` (worker `i` gets the `i`-th run, up to
/// `workers.len()` of them), at once, and returns each run's result in run order. A worker
/// is whatever a task needs to itself — e.g. a guest instance — so `f` gets it mutably.
pub fn on_workers<W, T, R>(
    workers: &mut [W],
    items: Vec<T>,
    f: impl Fn(&mut W, Vec<T>) -> R + Sync,
) -> Vec<R>
where
    W: Send,
    T: Send,
    R: Send,
{
    let runs = runs(items, workers.len());
    if runs.len() <= 1 {
        return runs
            .into_iter()
            .zip(workers.iter_mut())
            .map(|(run, w)| f(w, run))
            .collect();
    }
    workers
        .par_iter_mut()
        .zip(runs.into_par_iter())
        .map(task(|(w, run): (&mut W, Vec<T>)| f(w, run)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_of_rows_depend_on_the_rows_not_on_the_record_batches() {
        use arrow_array::{Array, Int64Array};
        let batch = |r: std::ops::Range<i64>| {
            RecordBatch::try_from_iter([(
                "v",
                Arc::new(Int64Array::from_iter_values(r)) as arrow_array::ArrayRef,
            )])
            .unwrap()
        };
        let values = |chunk: &Vec<RecordBatch>| -> Vec<i64> {
            chunk
                .iter()
                .flat_map(|b| {
                    let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                    (0..a.len()).map(|i| a.value(i)).collect::<Vec<_>>()
                })
                .collect()
        };
        let one = chunks_of_rows(&[batch(0..10)], 4);
        let three = chunks_of_rows(&[batch(0..3), batch(3..4), batch(4..10)], 4);
        let want = vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]];
        assert_eq!(one.iter().map(values).collect::<Vec<_>>(), want);
        assert_eq!(three.iter().map(values).collect::<Vec<_>>(), want);
        assert!(chunks_of_rows(&[], 4).is_empty());
    }

    #[test]
    fn runs_are_contiguous_balanced_and_keep_every_item() {
        let r = runs((0..10).collect(), 3);
        assert_eq!(r, vec![vec![0, 1, 2, 3], vec![4, 5, 6], vec![7, 8, 9]]);
        assert_eq!(runs((0..2).collect::<Vec<_>>(), 4), vec![vec![0], vec![1]]);
        assert!(runs(Vec::<u8>::new(), 4).is_empty());
    }

    #[test]
    fn results_keep_item_order_and_the_first_error_wins() {
        let out = try_map((0..100).collect(), 4, |i: u32| Ok::<_, String>(i * 2)).unwrap();
        assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        let err = try_map((0..100).collect(), 4, |i: u32| {
            if i % 30 == 29 { Err(i) } else { Ok(i) }
        });
        assert_eq!(err, Err(29));
        let mut workers = vec![0u32; 3];
        let sums = on_workers(&mut workers, (1..=9).collect(), |w, run: Vec<u32>| {
            *w += 1;
            run.iter().sum::<u32>()
        });
        assert_eq!(sums, vec![6, 15, 24]);
        assert_eq!(workers, vec![1, 1, 1]);
    }
}
