//! Who owns an input partition: the `owners/` log of a partition's checkpoint, and the
//! [`Fence`] that keeps a member that lost the partition from writing to it.
//!
//! ```text
//! partitions/<topic>-<p>/owners/0   {"member": "a", "pid": 4711, "claimedAt": "…"}
//! partitions/<topic>-<p>/owners/1   {"member": "b", …}      ← the owner now
//! ```
//!
//! Each entry is *created* (put-if-absent: `If-None-Match: *` on an object store, a hard
//! link locally), so two members claiming at once get different epochs and the later one
//! owns the partition. The owner's checkpoint writes check first that the newest entry is
//! still theirs ([`Ownership::check`]); the entries are never rewritten, so a member that
//! lost its partition while paused finds out at its next write.

use serde::{Deserialize, Serialize};

use crate::checkpoint::Fence;
use crate::error::{Error, Result};
use crate::storage::Location;

/// One entry of a partition's owners log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OwnerEntry {
    /// The member's name (`sluice run --member`).
    pub member: String,
    /// Its process id, to tell two runs of one member name apart in the log.
    pub pid: u32,
    /// When it claimed the partition (RFC 3339).
    pub claimed_at: String,
}

/// This process's claim on one partition: epoch `epoch` of its owners log.
#[derive(Debug)]
pub struct Ownership {
    task_dir: Location,
    owners: Location,
    partition: String,
    member: String,
    epoch: u64,
}

impl Ownership {
    /// Claims `partition` (whose checkpoint is `task_dir`) for `member`: creates the next
    /// owner entry, so every earlier owner is fenced from now on.
    pub fn claim(task_dir: &Location, partition: &str, member: &str) -> Result<Ownership> {
        let owners = task_dir.join("owners");
        owners.create_dir_all()?;
        let entry = OwnerEntry {
            member: member.to_owned(),
            pid: std::process::id(),
            claimed_at: crate::progress::now_rfc3339(),
        };
        let bytes =
            serde_json::to_vec(&entry).map_err(|e| Error::data("writing an owner entry", e))?;
        // A lost race means another member claimed the same epoch a moment earlier: take the
        // next one (the group gave the partition to us, so ours is the later claim).
        for _ in 0..100 {
            let epoch = owners.numbered_entries()?.last().map_or(0, |e| e + 1);
            if owners.join(epoch.to_string()).create(bytes.clone())? {
                return Ok(Ownership {
                    task_dir: task_dir.clone(),
                    owners,
                    partition: partition.to_owned(),
                    member: member.to_owned(),
                    epoch,
                });
            }
        }
        Err(Error::Fenced {
            partition: partition.to_owned(),
            message: "100 claims in a row lost to other members; is another group running this checkpoint?".into(),
        })
    }

    /// The epoch of this claim.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The newest owner entry and its epoch, if any.
    pub fn current(task_dir: &Location) -> Result<Option<(u64, OwnerEntry)>> {
        let owners = task_dir.join("owners");
        let Some(&epoch) = owners.numbered_entries()?.last() else {
            return Ok(None);
        };
        let at = owners.join(epoch.to_string());
        let Some(bytes) = at.read()? else {
            return Ok(None);
        };
        let entry = serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
            path: at.to_path_buf(),
            message: format!("owner entry is corrupt: {e}"),
        })?;
        Ok(Some((epoch, entry)))
    }
}

impl Fence for Ownership {
    fn check(&self, what: &str, batch_id: u64) -> Result<()> {
        let Some(&newest) = self.owners.numbered_entries()?.last() else {
            return Err(Error::Fenced {
                partition: self.partition.clone(),
                message: format!("its owners log vanished; {what}/{batch_id} not written"),
            });
        };
        if newest == self.epoch {
            return Ok(());
        }
        let by = Ownership::current(&self.task_dir)
            .ok()
            .flatten()
            .map_or_else(
                || "another member".to_owned(),
                |(_, e)| format!("member '{}' (pid {})", e.member, e.pid),
            );
        Err(Error::Fenced {
            partition: self.partition.clone(),
            message: format!(
                "was taken over by {by} (owner epoch {newest}; member '{}' held epoch {}): {what}/{batch_id} not written, the new owner continues from the last commit",
                self.member, self.epoch
            ),
        })
    }
}
