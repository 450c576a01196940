//! How many state partitions a query's stateful operators have (`shufflePartitions`), fixed
//! for the life of a checkpoint: a key's state lives in the partition its hash picks, so a
//! different count would look for it in the wrong files. Recorded in
//! `state/shufflePartitions` when the first stateful batch runs; a later run uses it, and a
//! pipeline that asks for another count is refused (as Spark does).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
pub fn partitions(checkpoint: &Path, requested: Option<usize>, default: usize) -> Result<usize> {
    let path = checkpoint.join("state").join("shufflePartitions");
    let recorded = match std::fs::read(&path) {
        Ok(bytes) => Some(
            serde_json::from_slice::<Recorded>(&bytes)
                .map_err(|e| Error::Checkpoint {
                    path: path.clone(),
                    message: format!("unreadable: {e}"),
                })?
                .shuffle_partitions,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PARTITIONED
            .iter()
            .any(|op| checkpoint.join("state").join(op).join("0").exists())
            .then_some(1),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    match (recorded, requested) {
        (Some(n), Some(r)) if n != r => Err(Error::Checkpoint {
            path,
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
            crate::fsutil::create_dir_all(&checkpoint.join("state"))?;
            crate::fsutil::write_atomic(&path, &bytes)?;
            Ok(n)
        }
    }
}
