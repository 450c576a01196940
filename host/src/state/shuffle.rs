//! How many state partitions a query's stateful operators have (`shufflePartitions`), fixed
//! for the life of a checkpoint: a key's state lives in the partition its hash picks, so a
//! different count would look for it in the wrong files. Recorded in
//! `state/shufflePartitions` when the first stateful batch runs; a later run uses it, and a
//! pipeline that asks for another count is refused (as Spark does).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::Location;

/// The operators whose state is partitioned.
const PARTITIONED: [&str; 4] = ["aggregate", "dedup", "processor", "join"];

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recorded {
    shuffle_partitions: usize,
}

/// The count for the query at `checkpoint`: the recorded one; for a new checkpoint
/// `requested` (the pipeline's `shufflePartitions`) or `default`. A checkpoint from before
/// partitioning has one.
pub fn partitions(
    checkpoint: &Location,
    requested: Option<usize>,
    default: usize,
) -> Result<usize> {
    let path = checkpoint.join("state").join("shufflePartitions");
    let recorded = match path.read()? {
        Some(bytes) => Some(
            serde_json::from_slice::<Recorded>(&bytes)
                .map_err(|e| Error::Checkpoint {
                    path: path.to_path_buf(),
                    message: format!("unreadable: {e}"),
                })?
                .shuffle_partitions,
        ),
        None => {
            let state = checkpoint.join("state");
            let mut before_partitioning = false;
            for op in PARTITIONED {
                before_partitioning |= state.join(op).children()?.iter().any(|n| n == "0");
            }
            before_partitioning.then_some(1)
        }
    };
    match (recorded, requested) {
        (Some(n), Some(r)) if n != r => Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!(
                "the pipeline sets shufflePartitions = {r}, but this checkpoint's state is split into {n} partitions; a key's state is found by its partition, so the count cannot change: set shufflePartitions = {n} (or leave it out), or start from a new checkpointLocation"
            ),
        }),
        (Some(n), _) => Ok(n),
        (None, r) => {
            let n = r.unwrap_or(default).max(1);
            let bytes = serde_json::to_vec(&Recorded {
                shuffle_partitions: n,
            })
            .map_err(|e| Error::data("recording shufflePartitions", e))?;
            checkpoint.join("state").create_dir_all()?;
            path.write(bytes)?;
            Ok(n)
        }
    }
}
