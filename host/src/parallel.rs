//! Running one batch's partitions at once.
//!
//! A batch's partitions — the files it reads, the record batches its Wasm steps get — are
//! split into at most `parallelism` contiguous runs, and each run is one task on the
//! process's worker pool (rayon's global pool: one thread per core, shared by every query of
//! the process, so several queries share the cores instead of each spawning its own threads).
//! Results come back in partition order: what a batch produces never depends on which
//! thread ran what, so a re-run batch writes the same rows in the same files.

use rayon::prelude::*;

/// The default `parallelism` of a query: the cores this process may use.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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
        .map(|run| run.into_iter().map(&f).collect())
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
        .map(|(w, run)| f(w, run))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
