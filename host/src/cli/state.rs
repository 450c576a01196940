//! `sluice state show CHECKPOINT`: the state of a query's stateful operators as JSON lines
//! (Spark's state data source reader), read from the checkpoint alone — no module, no
//! pipeline, nothing running.

use anyhow::{Context, bail};

use crate::operators::{aggregate, dedup, join, processor};

/// The batch whose state is shown by default: the last committed one.
fn last_committed(checkpoint: &crate::storage::Location) -> anyhow::Result<u64> {
    if !checkpoint.join("metadata").exists()? {
        bail!("{checkpoint} is not a checkpoint (no metadata)");
    }
    checkpoint
        .join("commits")
        .numbered_entries()?
        .last()
        .copied()
        .with_context(|| format!("{checkpoint}: no batch was committed yet"))
}

/// The operators with state in a checkpoint (`state/<name>/`).
fn operators(checkpoint: &crate::storage::Location) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = checkpoint
        .join("state")
        .children()?
        .into_iter()
        // `state/shufflePartitions` is a file beside the operators' folders.
        .filter(|n| n != "shufflePartitions" && !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// Prints every key's state (or the keys `filters` pick, `COLUMN=VALUE`) of `operator`
/// (default: every operator) after batch `batch` (default: the last committed), one JSON
/// object per line.
pub fn show(
    checkpoint: &crate::storage::Location,
    operator: Option<&str>,
    filters: &[String],
    batch: Option<u64>,
) -> anyhow::Result<()> {
    let version = match batch {
        Some(b) => b,
        None => last_committed(checkpoint)?,
    };
    let filters: Vec<(String, String)> = filters
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(c, v)| (c.to_owned(), v.to_owned()))
                .with_context(|| format!("--key {f}: expected COLUMN=VALUE, e.g. --key user_id=u7"))
        })
        .collect::<anyhow::Result<_>>()?;
    let matches = |key: &serde_json::Map<String, serde_json::Value>| {
        filters.iter().all(|(c, v)| match key.get(c) {
            Some(serde_json::Value::String(s)) => s == v,
            Some(other) => serde_json::from_str::<serde_json::Value>(v).is_ok_and(|v| v == *other),
            None => false,
        })
    };
    let found = operators(checkpoint)?;
    let wanted: Vec<&String> = match operator {
        Some(op) => match found.iter().find(|n| n.as_str() == op) {
            Some(n) => vec![n],
            None => bail!(
                "{} has no state of an operator '{op}' (it has: {})",
                checkpoint,
                if found.is_empty() {
                    "none".to_owned()
                } else {
                    found.join(", ")
                }
            ),
        },
        None => found.iter().collect(),
    };
    if wanted.is_empty() {
        bail!(
            "{} holds no operator state (the query is stateless)",
            checkpoint
        );
    }
    let mut out = std::io::stdout().lock();
    for name in wanted {
        // A view's operator is `<view>.<kind>`; the query's own are named by their kind.
        let kind = name.rsplit('.').next().unwrap_or(name);
        let rows = match kind {
            processor::STATE_NAME => {
                processor::layout::state_rows(checkpoint, name, version, &matches)?
            }
            aggregate::STATE_NAME => aggregate::state_rows(checkpoint, name, version, &matches)?,
            dedup::STATE_NAME => dedup::state_rows(checkpoint, name, version, &matches)?,
            join::symmetric::STATE_NAME => {
                join::symmetric::state_rows(checkpoint, name, version, &matches)?
            }
            other => bail!(
                "{}: no reader for the state of an operator '{other}'",
                checkpoint
            ),
        };
        for row in rows {
            use std::io::Write;
            match writeln!(out, "{row}") {
                // `sluice state show ... | head`: the reader has what it wanted.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                other => other?,
            }
        }
    }
    Ok(())
}
