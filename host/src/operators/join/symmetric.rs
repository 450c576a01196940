//! The stream–stream join (Spark's `StreamingSymmetricHashJoinExec`).
//!
//! Both sides' rows are buffered, so a row can meet rows of the other side that arrive in
//! any later batch. Per micro-batch, with the batch's watermark `W`:
//!
//! 1. Rows older than `W` (on a side with an event-time column) are late: dropped and counted.
//! 2. The new right rows are buffered; each new left row probes every buffered right row of its
//!    key (old and new); each new right row probes the *old* left rows (so a pair of two new
//!    rows is found once). A candidate pair matches when its event times satisfy `within`:
//!    `right.time - left.time ∈ [lower, upper]`. Then the new left rows are buffered.
//! 3. Eviction: no future right row can be older than `W`, so a left row whose
//!    `time + upper < W` can never match again; likewise a right row whose `time - lower < W`.
//!    Such rows leave the state, and an outer side's rows that never matched are emitted now,
//!    with nulls — exactly once, since the eviction is part of the batch's state version.
//!
//! Without `within` nothing is ever evicted (an inner join's state then grows without bound,
//! as in Spark; `sluice validate` requires `within` for every other join type).
//!
//! State: each batch's buffered rows of a side are one chunk, kept as an Arrow record batch
//! (one copy of each row) with a key → (chunk, row) index. In the state store a chunk is two
//! entries: its rows as Arrow IPC (written once) and its flags (matched, still buffered),
//! rewritten when they change; a chunk with no buffered row left is deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use hashbrown::HashMap;

use super::{JoinLayout, JoinSpec, JoinType, KeyEncoder, RowPair, TimeRange, gather};
use crate::error::{Error, Result};
use crate::operators::exchange::{Exchange, RouteKeys, RouteRows, StatePartition};
use crate::operators::{BatchClock, StateOperatorProgress, Watermarks};
use crate::state::StateStore;
use crate::watermark::event_times;

/// The state store's name for a stream–stream join (`state/join/` in the checkpoint).
pub const STATE_NAME: &str = "join";

const LEFT: usize = 0;
const RIGHT: usize = 1;
/// A row with no event time (no time column, or a null).
const NO_TIME: i64 = i64::MIN;

/// A row in a side's state: (chunk = the batch id that buffered it, row).
type StateRow = (u64, u32);
/// A pair of output rows found in state (`None`: nulls on that side).
type StatePair = (Option<StateRow>, Option<StateRow>);

/// One batch's buffered rows of one side.
struct Chunk {
    rows: RecordBatch,
    times: Vec<i64>,
    keys: arrow_row::Rows,
    matched: Vec<bool>,
    live: Vec<bool>,
    live_count: usize,
    /// Each row's entry in the key index (`END`: not in it), so a row leaves it in O(1).
    slots: Vec<u32>,
}

/// No further entry in a key's chain.
const END: u32 = u32::MAX;

/// One buffered row in a key's chain (doubly linked: eviction takes rows out of the middle
/// of a hot key's long chain, which a walk from the head would make quadratic).
#[derive(Clone, Copy)]
struct Entry {
    chunk: u64,
    row: u32,
    next: u32,
    prev: u32,
}

/// Where each key's buffered rows are, without an allocation per key: a hash table of chain
/// heads over a slab of entries, keys compared in the chunks' own row encoding.
#[derive(Default)]
struct Index {
    heads: hashbrown::HashTable<u32>,
    entries: Vec<Entry>,
    free: Vec<u32>,
    hasher: foldhash::fast::FixedState,
}

fn key_of<'a>(chunks: &'a BTreeMap<u64, Chunk>, e: &Entry) -> &'a [u8] {
    chunks
        .get(&e.chunk)
        .map(|c| c.keys.row(e.row as usize).data())
        .unwrap_or(&[])
}

impl Index {
    fn hash(&self, key: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }

    /// The first entry of `key`'s chain (`END`: none).
    fn head(&self, chunks: &BTreeMap<u64, Chunk>, key: &[u8]) -> u32 {
        let entries = &self.entries;
        self.heads
            .find(self.hash(key), |&id| {
                key_of(chunks, &entries[id as usize]) == key
            })
            .copied()
            .unwrap_or(END)
    }

    /// Puts row `row` of chunk `chunk` at the head of `key`'s chain; returns its entry.
    fn link(&mut self, chunks: &BTreeMap<u64, Chunk>, key: &[u8], chunk: u64, row: u32) -> u32 {
        let hash = self.hash(key);
        let entry = Entry {
            chunk,
            row,
            next: END,
            prev: END,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = entry;
                id
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        let (entries, hasher) = (&mut self.entries, &self.hasher);
        match self
            .heads
            .find_mut(hash, |&h| key_of(chunks, &entries[h as usize]) == key)
        {
            Some(head) => {
                entries[id as usize].next = *head;
                entries[*head as usize].prev = id;
                *head = id;
            }
            None => {
                self.heads.insert_unique(hash, id, |&h| {
                    use std::hash::BuildHasher;
                    hasher.hash_one(key_of(chunks, &entries[h as usize]))
                });
            }
        }
        id
    }

    /// Takes entry `id` (of a row whose key is `key`) out of its chain.
    fn unlink(&mut self, key: &[u8], id: u32) {
        let Some(&Entry { next, prev, .. }) = self.entries.get(id as usize) else {
            return;
        };
        if prev == END {
            // The chain's head: its slot in the table points at it.
            let hash = self.hash(key);
            let Ok(mut slot) = self.heads.find_entry(hash, |&h| h == id) else {
                return;
            };
            if next == END {
                slot.remove();
            } else {
                *slot.get_mut() = next;
            }
        } else {
            self.entries[prev as usize].next = next;
        }
        if next != END {
            self.entries[next as usize].prev = prev;
        }
        self.free.push(id);
    }

    fn memory(&self) -> u64 {
        (self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.free.capacity() * 4
            + self.heads.capacity() * 5) as u64
    }
}

/// What one side keeps: its chunks by batch id, and where each key's rows are.
#[derive(Default)]
struct Side {
    chunks: BTreeMap<u64, Chunk>,
    index: Index,
    /// Chunks whose flags changed in this batch, added ones, removed ones (the delta).
    dirty: BTreeSet<u64>,
    added: BTreeSet<u64>,
    removed: BTreeSet<u64>,
}

impl Side {
    fn insert(&mut self, id: u64, chunk: Chunk) {
        let n = chunk.rows.num_rows();
        self.chunks.insert(id, chunk);
        let Side { chunks, index, .. } = self;
        let Some(chunk) = chunks.get(&id) else { return };
        let mut slots = vec![END; n];
        for (row, slot) in slots.iter_mut().enumerate() {
            if chunk.live[row] {
                *slot = index.link(chunks, chunk.keys.row(row).data(), id, row as u32);
            }
        }
        if let Some(chunk) = chunks.get_mut(&id) {
            chunk.slots = slots;
        }
    }

    /// Every buffered row of `key`, as (chunk, row).
    fn rows_of(&self, key: &[u8]) -> impl Iterator<Item = (u64, u32)> + '_ {
        let entries = &self.index.entries;
        let head = self.index.head(&self.chunks, key);
        std::iter::successors((head != END).then(|| entries[head as usize]), move |e| {
            (e.next != END).then(|| entries[e.next as usize])
        })
        .map(|e| (e.chunk, e.row))
    }

    /// Takes row `row` of chunk `cid` out of the index (it stays in its chunk until the chunk
    /// has no buffered row left).
    fn unlink(&mut self, cid: u64, row: u32) {
        let Side { chunks, index, .. } = self;
        if let Some(chunk) = chunks.get_mut(&cid)
            && let Some(slot) = chunk.slots.get_mut(row as usize)
            && *slot != END
        {
            index.unlink(chunk.keys.row(row as usize).data(), *slot);
            *slot = END;
        }
    }

    fn live_rows(&self) -> u64 {
        self.chunks.values().map(|c| c.live_count as u64).sum()
    }

    fn memory(&self) -> u64 {
        self.chunks
            .values()
            .map(|c| (c.rows.get_array_memory_size() + c.keys.size() + c.times.len() * 10) as u64)
            .sum::<u64>()
            + self.index.memory()
    }
}

/// Two streams joined on equal keys within an event-time range.
pub struct StreamStreamJoin {
    spec: JoinSpec,
    layout: JoinLayout,
    schemas: [SchemaRef; 2],
    keys: KeyEncoder,
    time_columns: [Option<String>; 2],
    sides: [Side; 2],
    store: StateStore,
    stats: StateOperatorProgress,
}

fn state_key(side: usize, chunk: u64, kind: u8) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = side as u8;
    k[1..9].copy_from_slice(&chunk.to_be_bytes());
    k[9] = kind;
    k
}

const ROWS: u8 = 0;
const FLAGS: u8 = 1;

impl StreamStreamJoin {
    /// Lays out the join of the two sides' schemas; its state lives in partition `partition`
    /// under `checkpoint`.
    pub fn new(
        spec: JoinSpec,
        left: SchemaRef,
        right: SchemaRef,
        checkpoint: &crate::storage::Location,
        operator: &str,
        partition: usize,
    ) -> Result<StreamStreamJoin> {
        let layout = JoinLayout::new(&spec, &left, &right)?;
        let keys = KeyEncoder::new(
            &layout
                .left_keys
                .iter()
                .map(|&i| left.field(i).data_type().clone())
                .collect::<Vec<_>>(),
        )?;
        let time_columns = match &spec.within {
            Some(TimeRange {
                left: l, right: r, ..
            }) => {
                // A side that is itself a SQL join names its time column qualified (`s0.ts`).
                let field = |schema: &Schema, name: &String| {
                    crate::qualifier::index_of(schema, name)
                        .map_or_else(|| name.clone(), |i| schema.field(i).name().clone())
                };
                let (l, r) = (field(&left, l), field(&right, r));
                crate::watermark::check_event_time_column(&left, &l, "join within.left")?;
                crate::watermark::check_event_time_column(&right, &r, "join within.right")?;
                [Some(l), Some(r)]
            }
            None => [None, None],
        };
        Ok(StreamStreamJoin {
            store: StateStore::open_partition(checkpoint, operator, partition, 10)?,
            spec,
            layout,
            schemas: [left, right],
            keys,
            time_columns,
            sides: [Side::default(), Side::default()],
            stats: StateOperatorProgress {
                operator_name: "symmetricHashJoin".into(),
                ..Default::default()
            },
        })
    }

    /// Each side's join keys as the exchange routes them: encoded the way the join compares
    /// keys (in the left side's types), so equal keys of both sides reach the same partition.
    pub fn route_keys(&self) -> Result<JoinKeys> {
        Ok(JoinKeys {
            encoder: KeyEncoder::new(
                &self
                    .layout
                    .left_keys
                    .iter()
                    .map(|&i| self.schemas[LEFT].field(i).data_type().clone())
                    .collect::<Vec<_>>(),
            )?,
            sides: [
                self.layout.left_keys.clone(),
                self.layout.right_keys.clone(),
            ],
        })
    }

    /// The schema of the joined rows.
    pub fn output_schema(&self) -> SchemaRef {
        self.layout.schema.clone()
    }

    /// How far behind the watermark the event times of the rows it emits can be, ms: a
    /// buffered row meets its match, or leaves unmatched, up to the time range's width after
    /// the watermark passed it.
    pub fn output_lag_ms(&self) -> i64 {
        self.spec
            .within
            .as_ref()
            .map_or(0, |w| w.upper_us.max(-w.lower_us).max(0) / 1000)
    }

    /// Whether a watermark that moved without data can evict (and so emit outer rows).
    pub fn wants_no_data_batches(&self) -> bool {
        self.spec.within.is_some()
    }

    /// Statistics of the last batch.
    pub fn progress(&self) -> StateOperatorProgress {
        self.stats.clone()
    }

    /// The event time of each row of side `side` (`NO_TIME` without a time column or value).
    fn times(&self, side: usize, rows: &RecordBatch) -> Result<Vec<i64>> {
        Ok(match &self.time_columns[side] {
            Some(c) => event_times(rows, c)?
                .iter()
                .map(|t| t.unwrap_or(NO_TIME))
                .collect(),
            None => vec![NO_TIME; rows.num_rows()],
        })
    }

    /// A chunk of side `side` from `rows` (all of them buffered, none matched yet).
    fn chunk(&self, side: usize, rows: RecordBatch) -> Result<(Chunk, Vec<bool>)> {
        let times = self.times(side, &rows)?;
        self.chunk_with_times(side, rows, times)
    }

    /// [`Self::chunk`] with the rows' event times already read.
    fn chunk_with_times(
        &self,
        side: usize,
        rows: RecordBatch,
        times: Vec<i64>,
    ) -> Result<(Chunk, Vec<bool>)> {
        let keys_at = if side == LEFT {
            &self.layout.left_keys
        } else {
            &self.layout.right_keys
        };
        let (keys, null) = self.keys.encode(&rows, keys_at)?;
        let n = rows.num_rows();
        Ok((
            Chunk {
                rows,
                times,
                keys,
                matched: vec![false; n],
                live: vec![true; n],
                live_count: n,
                slots: Vec::new(),
            },
            null,
        ))
    }

    /// Whether a left row at `tl` and a right row at `tr` satisfy the time condition.
    fn in_range(&self, tl: i64, tr: i64) -> bool {
        match &self.spec.within {
            None => true,
            Some(w) => {
                tl != NO_TIME && tr != NO_TIME && {
                    let d = tr.saturating_sub(tl);
                    d >= w.lower_us && d <= w.upper_us
                }
            }
        }
    }

    /// Joins batch `batch_id`'s new rows of both sides with each other and with the buffered
    /// rows, then evicts what the watermark (ms) rules out. Returns the joined rows.
    pub fn process(
        &mut self,
        batch_id: u64,
        watermark_ms: i64,
        left: Vec<RecordBatch>,
        right: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>> {
        self.process_with(batch_id, Watermarks::single(watermark_ms), left, right)
    }

    /// As [`StreamStreamJoin::process`], with new rows judged late by `watermarks.late_ms`
    /// and state evicted by `watermarks.eviction_ms` (behind another stateful operator the
    /// two differ: what it emits when the watermark passes is not late here).
    pub fn process_with(
        &mut self,
        batch_id: u64,
        watermarks: Watermarks,
        left: Vec<RecordBatch>,
        right: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>> {
        let watermark_ms = watermarks.eviction_ms;
        let watermark_us = watermark_ms.saturating_mul(1000);
        let late_us = watermarks.late_ms.saturating_mul(1000);
        let jt = self.spec.join_type;
        let mut dropped = 0u64;
        let mut new_rows = 0u64;
        // The new rows of each side, late ones dropped.
        let mut fresh: [Option<(Chunk, Vec<bool>)>; 2] = [None, None];
        for (side, batches) in [(LEFT, left), (RIGHT, right)] {
            let rows = arrow_select::concat::concat_batches(&self.schemas[side], &batches)
                .map_err(|e| Error::data("join input", e))?;
            if rows.num_rows() == 0 {
                continue;
            }
            let mut times = self.times(side, &rows)?;
            let mut rows = rows;
            if watermarks.late_ms > 0 && self.time_columns[side].is_some() {
                let keep: arrow_array::BooleanArray =
                    times.iter().map(|&t| Some(t >= late_us)).collect();
                let late = keep.false_count();
                if late > 0 {
                    dropped += late as u64;
                    rows = arrow_select::filter::filter_record_batch(&rows, &keep)
                        .map_err(|e| Error::data("join input", e))?;
                    times.retain(|&t| t >= late_us);
                    if rows.num_rows() == 0 {
                        continue;
                    }
                }
            }
            fresh[side] = Some(self.chunk_with_times(side, rows, times)?);
        }

        // Pairs found, as ((side chunk id, row), ...); ids are batch ids.
        let mut pairs: Vec<StatePair> = Vec::new();
        // 1. New right rows into the state.
        let right_null = match fresh[RIGHT].take() {
            Some((chunk, null)) => {
                new_rows += chunk.rows.num_rows() as u64;
                let mut chunk = chunk;
                for (row, n) in null.iter().enumerate() {
                    // A null key never matches; it stays only to be emitted by an outer join.
                    if *n && !jt.keeps_unmatched_right() {
                        chunk.live[row] = false;
                        chunk.live_count -= 1;
                    }
                }
                self.sides[RIGHT].insert(batch_id, chunk);
                self.sides[RIGHT].added.insert(batch_id);
                null
            }
            None => Vec::new(),
        };
        // 2. New left rows probe every right row (old and new).
        let mut right_hits: Vec<(u64, u32)> = Vec::new();
        if let Some((mut lchunk, lnull)) = fresh[LEFT].take() {
            new_rows += lchunk.rows.num_rows() as u64;
            for (row, &null) in lnull.iter().enumerate() {
                if null {
                    continue;
                }
                let tl = lchunk.times[row];
                for (cid, r) in self.sides[RIGHT].rows_of(lchunk.keys.row(row).data()) {
                    let Some(rc) = self.sides[RIGHT].chunks.get(&cid) else {
                        continue;
                    };
                    if !self.in_range(tl, rc.times[r as usize]) {
                        continue;
                    }
                    let first = !lchunk.matched[row];
                    lchunk.matched[row] = true;
                    if jt == JoinType::LeftSemi {
                        if first {
                            pairs.push((Some((batch_id, row as u32)), None));
                        }
                    } else {
                        pairs.push((Some((batch_id, row as u32)), Some((cid, r))));
                    }
                    if !rc.matched[r as usize] {
                        right_hits.push((cid, r));
                    }
                }
            }
            for (cid, r) in right_hits.drain(..) {
                if let Some(rc) = self.sides[RIGHT].chunks.get_mut(&cid) {
                    rc.matched[r as usize] = true;
                }
                self.sides[RIGHT].dirty.insert(cid);
            }
            // 3. New right rows probe the old left rows.
            self.probe_old_left(batch_id, &right_null, &mut pairs);
            for (row, n) in lnull.iter().enumerate() {
                if *n && !jt.keeps_unmatched_left() && lchunk.live[row] {
                    lchunk.live[row] = false;
                    lchunk.live_count -= 1;
                }
            }
            // A semi join's matched left row is done: it was emitted and cannot be again.
            if jt == JoinType::LeftSemi {
                for row in 0..lchunk.rows.num_rows() {
                    if lchunk.matched[row] && lchunk.live[row] {
                        lchunk.live[row] = false;
                        lchunk.live_count -= 1;
                    }
                }
            }
            self.sides[LEFT].insert(batch_id, lchunk);
            self.sides[LEFT].added.insert(batch_id);
        } else {
            self.probe_old_left(batch_id, &right_null, &mut pairs);
        }

        // 4. Evict what the watermark rules out; emit unmatched outer rows.
        let mut evicted = 0u64;
        if let Some(w) = self.spec.within.clone()
            && watermark_ms > 0
        {
            for side in [LEFT, RIGHT] {
                let emit = if side == LEFT {
                    jt.keeps_unmatched_left()
                } else {
                    jt.keeps_unmatched_right()
                };
                let expired = |t: i64| {
                    t == NO_TIME
                        || if side == LEFT {
                            t.saturating_add(w.upper_us) < watermark_us
                        } else {
                            t.saturating_sub(w.lower_us) < watermark_us
                        }
                };
                let s = &mut self.sides[side];
                let mut gone = Vec::new();
                for (&cid, chunk) in &s.chunks {
                    for row in 0..chunk.rows.num_rows() {
                        if chunk.live[row] && expired(chunk.times[row]) {
                            gone.push((cid, row as u32));
                        }
                    }
                }
                for &(cid, row) in &gone {
                    s.unlink(cid, row);
                    let Some(chunk) = s.chunks.get_mut(&cid) else {
                        continue;
                    };
                    chunk.live[row as usize] = false;
                    chunk.live_count -= 1;
                    evicted += 1;
                    if emit && !chunk.matched[row as usize] {
                        let r = Some((cid, row));
                        pairs.push(if side == LEFT { (r, None) } else { (None, r) });
                    }
                    s.dirty.insert(cid);
                }
            }
        }

        let out = self.build(&pairs)?;
        // A chunk with no buffered row left leaves the state — after the output is built,
        // since this batch's pairs may still name its rows.
        for s in &mut self.sides {
            let empty: Vec<u64> = s
                .chunks
                .iter()
                .filter(|(_, c)| c.live_count == 0)
                .map(|(&id, _)| id)
                .collect();
            for cid in empty {
                s.chunks.remove(&cid);
                s.removed.insert(cid);
            }
        }
        self.stats.num_rows_total = self.sides[LEFT].live_rows() + self.sides[RIGHT].live_rows();
        self.stats.num_rows_updated = new_rows;
        self.stats.num_rows_removed = evicted;
        self.stats.num_rows_dropped_by_watermark = dropped;
        self.stats.memory_used_bytes = self.sides[LEFT].memory() + self.sides[RIGHT].memory();
        Ok(out)
    }

    /// New right rows (chunk `batch_id` of the right side) probe the left rows buffered
    /// before this batch.
    fn probe_old_left(&mut self, batch_id: u64, right_null: &[bool], pairs: &mut Vec<StatePair>) {
        let jt = self.spec.join_type;
        let Some(rchunk) = self.sides[RIGHT].chunks.get(&batch_id) else {
            return;
        };
        let mut right_matched = Vec::new();
        // Each old left row a new right row matched, once.
        let mut left_matched = BTreeSet::new();
        for row in 0..rchunk.rows.num_rows() {
            if right_null.get(row).copied().unwrap_or(true) {
                continue;
            }
            let tr = rchunk.times[row];
            for (cid, l) in self.sides[LEFT].rows_of(rchunk.keys.row(row).data()) {
                if cid == batch_id {
                    continue;
                }
                let Some(lc) = self.sides[LEFT].chunks.get(&cid) else {
                    continue;
                };
                if !lc.live[l as usize] || !self.in_range(lc.times[l as usize], tr) {
                    continue;
                }
                let first = left_matched.insert((cid, l));
                if jt == JoinType::LeftSemi {
                    if first && !lc.matched[l as usize] {
                        pairs.push((Some((cid, l)), None));
                    }
                } else {
                    pairs.push((Some((cid, l)), Some((batch_id, row as u32))));
                }
                right_matched.push(row);
            }
        }
        if let Some(rc) = self.sides[RIGHT].chunks.get_mut(&batch_id) {
            for row in right_matched {
                rc.matched[row] = true;
            }
        }
        for (cid, l) in left_matched {
            let done = jt == JoinType::LeftSemi
                && self.sides[LEFT]
                    .chunks
                    .get(&cid)
                    .is_some_and(|lc| lc.live[l as usize]);
            if done {
                self.sides[LEFT].unlink(cid, l);
            }
            if let Some(lc) = self.sides[LEFT].chunks.get_mut(&cid) {
                lc.matched[l as usize] = true;
                if done {
                    lc.live[l as usize] = false;
                    lc.live_count -= 1;
                }
            }
            self.sides[LEFT].dirty.insert(cid);
        }
    }

    /// The output rows of `pairs`, gathered from the chunks they name.
    fn build(&self, pairs: &[StatePair]) -> Result<Vec<RecordBatch>> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let positions = |side: usize| -> (Vec<&RecordBatch>, HashMap<u64, usize>) {
            let mut batches = Vec::new();
            let mut at = HashMap::new();
            for (&cid, chunk) in &self.sides[side].chunks {
                at.insert(cid, batches.len());
                batches.push(&chunk.rows);
            }
            (batches, at)
        };
        let (lb, lat) = positions(LEFT);
        let (rb, rat) = positions(RIGHT);
        let refs: Vec<RowPair> = pairs
            .iter()
            .map(|(l, r)| {
                (
                    l.and_then(|(c, row)| lat.get(&c).map(|&p| (p, row as usize))),
                    r.and_then(|(c, row)| rat.get(&c).map(|&p| (p, row as usize))),
                )
            })
            .collect();
        Ok(vec![gather(
            &self.layout,
            &lb,
            &rb,
            &self.schemas[LEFT],
            &self.schemas[RIGHT],
            &refs,
        )?])
    }

    /// Loads the state after batch `version` (`None`: empty).
    pub fn restore(&mut self, version: Option<u64>) -> Result<()> {
        self.sides = [Side::default(), Side::default()];
        let map = self.store.load(version)?;
        let mut rows: BTreeMap<(usize, u64), RecordBatch> = BTreeMap::new();
        let mut flags: BTreeMap<(usize, u64), Vec<u8>> = BTreeMap::new();
        for (k, v) in map {
            if k.len() != 10 {
                continue;
            }
            let side = k[0] as usize;
            let cid = u64::from_be_bytes(k[1..9].try_into().unwrap_or([0; 8]));
            match k[9] {
                ROWS => {
                    rows.insert((side, cid), read_ipc(&v[..], "join state")?);
                }
                _ => {
                    flags.insert((side, cid), v.into_vec());
                }
            }
        }
        for ((side, cid), batch) in rows {
            if side > RIGHT {
                continue;
            }
            let (mut chunk, _) = self.chunk(side, batch)?;
            let n = chunk.rows.num_rows();
            if let Some(f) = flags.get(&(side, cid))
                && f.len() == 2 * n
            {
                for row in 0..n {
                    chunk.matched[row] = f[row] != 0;
                    chunk.live[row] = f[n + row] != 0;
                }
                chunk.live_count = chunk.live.iter().filter(|l| **l).count();
            }
            self.sides[side].insert(cid, chunk);
        }
        Ok(())
    }

    /// Persists this batch's changes: new chunks, changed flags, removed chunks.
    pub fn commit(&mut self, batch_id: u64) -> Result<()> {
        let started = Instant::now();
        let sides = &self.sides;
        let mut ipc_error = None;
        self.store.commit(
            batch_id,
            |w| {
                for (side, s) in sides.iter().enumerate() {
                    for cid in &s.removed {
                        w.remove(&state_key(side, *cid, ROWS))?;
                        w.remove(&state_key(side, *cid, FLAGS))?;
                    }
                    for cid in s.added.union(&s.dirty) {
                        let Some(chunk) = s.chunks.get(cid) else {
                            continue;
                        };
                        if s.added.contains(cid) {
                            match write_ipc(&chunk.rows) {
                                Ok(bytes) => w.put(&state_key(side, *cid, ROWS), |b| {
                                    b.extend_from_slice(&bytes)
                                })?,
                                Err(e) => ipc_error = Some(e),
                            }
                        }
                        w.put(&state_key(side, *cid, FLAGS), |b| encode_flags(chunk, b))?;
                    }
                }
                Ok(())
            },
            |w| {
                for (side, s) in sides.iter().enumerate() {
                    for (cid, chunk) in &s.chunks {
                        if let Ok(bytes) = write_ipc(&chunk.rows) {
                            w.put(&state_key(side, *cid, ROWS), |b| {
                                b.extend_from_slice(&bytes)
                            })?;
                        }
                        w.put(&state_key(side, *cid, FLAGS), |b| encode_flags(chunk, b))?;
                    }
                }
                Ok(())
            },
        )?;
        if let Some(e) = ipc_error {
            return Err(e);
        }
        for s in &mut self.sides {
            s.added.clear();
            s.dirty.clear();
            s.removed.clear();
        }
        self.stats.commit_time_ms = started.elapsed().as_millis() as u64;
        Ok(())
    }

    /// Removes persisted versions older than `keep_from`.
    pub fn purge(&mut self, keep_from: u64) -> Result<()> {
        self.store.purge(keep_from)
    }
}

/// The join of `left` and `right` in `partitions` state partitions under `checkpoint` (one:
/// its state in partition 0, as before partitioning), as a node of the plan whose children are
/// the left and the right stream.
pub fn exchange(
    spec: JoinSpec,
    left: SchemaRef,
    right: SchemaRef,
    checkpoint: &crate::storage::Location,
    operator: &str,
    partitions: usize,
) -> Result<Exchange<StreamStreamJoin>> {
    let parts = (0..partitions.max(1))
        .map(|p| {
            StreamStreamJoin::new(
                spec.clone(),
                left.clone(),
                right.clone(),
                checkpoint,
                operator,
                p,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let keys = parts[0].route_keys()?;
    Exchange::new(
        "StreamStreamJoin",
        parts,
        spec.on.iter().map(|(l, _)| l.clone()).collect(),
        Box::new(RouteRows::new(Box::new(keys))),
        true,
    )
}

/// Each side's join key columns and how the join encodes them.
pub struct JoinKeys {
    encoder: KeyEncoder,
    /// The key columns of the left and of the right side.
    sides: [Vec<usize>; 2],
}

impl RouteKeys for JoinKeys {
    fn keys(&self, child: usize, batch: &RecordBatch) -> Result<Option<arrow_row::Rows>> {
        let columns = self.sides.get(child).ok_or_else(|| {
            Error::data("stream-stream join", format!("a join has no input {child}"))
        })?;
        Ok(Some(self.encoder.encode(batch, columns)?.0))
    }
}

/// One state partition of the join: child 0 is the left stream, child 1 the right.
impl StatePartition for StreamStreamJoin {
    fn schema(&self) -> SchemaRef {
        self.output_schema()
    }
    fn process(
        &mut self,
        clock: BatchClock,
        mut inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>> {
        let right = inputs.pop().unwrap_or_default();
        let left = inputs.pop().unwrap_or_default();
        self.process_with(clock.batch_id, clock.watermarks, left, right)
    }
    fn restore(&mut self, version: Option<u64>) -> Result<()> {
        StreamStreamJoin::restore(self, version)
    }
    fn commit(&mut self, batch_id: u64) -> Result<()> {
        StreamStreamJoin::commit(self, batch_id)
    }
    fn purge(&mut self, keep_from: u64) -> Result<()> {
        StreamStreamJoin::purge(self, keep_from)
    }
    fn progress(&self) -> StateOperatorProgress {
        StreamStreamJoin::progress(self)
    }
    fn wants_no_data_batches(&self) -> bool {
        StreamStreamJoin::wants_no_data_batches(self)
    }
    fn output_lag_ms(&self) -> i64 {
        StreamStreamJoin::output_lag_ms(self)
    }
}

fn encode_flags(chunk: &Chunk, b: &mut Vec<u8>) {
    b.extend(chunk.matched.iter().map(|&m| m as u8));
    b.extend(chunk.live.iter().map(|&l| l as u8));
}

fn write_ipc(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())
        .map_err(|e| Error::data("writing join state", e))?;
    w.write(batch)
        .map_err(|e| Error::data("writing join state", e))?;
    w.finish()
        .map_err(|e| Error::data("writing join state", e))?;
    drop(w);
    Ok(out)
}

fn read_ipc(bytes: &[u8], what: &str) -> Result<RecordBatch> {
    let mut reader = arrow_ipc::reader::StreamReader::try_new(bytes, None)
        .map_err(|e| Error::data(format!("reading {what}"), e))?;
    match reader.next() {
        Some(b) => b.map_err(|e| Error::data(format!("reading {what}"), e)),
        None => Err(Error::data(what.to_owned(), "an empty chunk")),
    }
}

/// The rows each side holds after batch `version` as JSON rows (for `sluice state show`):
/// the side, whether the row found a match yet, and its columns. The chunks carry their own
/// schema (Arrow IPC), so no layout file is needed.
pub fn state_rows(
    checkpoint: &crate::storage::Location,
    operator: &str,
    version: u64,
    matches: &dyn Fn(&serde_json::Map<String, serde_json::Value>) -> bool,
) -> Result<Vec<serde_json::Value>> {
    // Chunk ids are per partition: (side, partition, chunk) → its rows and flags, so rows
    // come out side by side whatever the number of partitions.
    type Chunks = BTreeMap<(u8, usize, u64), (Option<RecordBatch>, Vec<u8>)>;
    let mut chunks = Chunks::new();
    for partition in StateStore::partitions(checkpoint, operator)? {
        let store = StateStore::open_partition(checkpoint, operator, partition, 10)?;
        for (k, v) in store.load(Some(version))? {
            if k.len() != 10 {
                continue;
            }
            let id = (
                k[0],
                partition,
                u64::from_be_bytes(k[1..9].try_into().unwrap_or([0; 8])),
            );
            let entry = chunks.entry(id).or_default();
            match k[9] {
                ROWS => entry.0 = Some(read_ipc(&v, "join state")?),
                _ => entry.1 = v.into_vec(),
            }
        }
    }
    let mut rows = Vec::new();
    for ((side, _, _), (batch, flags)) in chunks {
        let Some(batch) = batch else { continue };
        let n = batch.num_rows();
        let json = crate::schema::rows_as_json(&batch)
            .map_err(|e| Error::data("reading join state", e))?;
        for (i, row) in json.into_iter().enumerate() {
            // Flags: `matched` for each row, then `live` for each (evicted rows are not live).
            let (matched, live) = if flags.len() == 2 * n {
                (flags[i] != 0, flags[n + i] != 0)
            } else {
                (false, true)
            };
            if !live || !matches(&row) {
                continue;
            }
            rows.push(serde_json::json!({
                "operator": operator,
                "side": if side as usize == LEFT { "left" } else { "right" },
                "matched": matched,
                "row": row,
            }));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};

    use super::*;
    use crate::operators::join::JoinRight;

    const MIN: i64 = 60_000_000;

    fn schema(time: &str, tag: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("ad", DataType::Int64, true),
            Field::new(time, DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new(tag, DataType::Utf8, true),
        ]))
    }

    fn rows(schema: &SchemaRef, rows: &[(i64, i64, &str)]) -> Vec<RecordBatch> {
        vec![
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(
                        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                    )),
                    Arc::new(TimestampMicrosecondArray::from(
                        rows.iter().map(|r| r.1 * MIN).collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(
                        rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                    )),
                ],
            )
            .unwrap(),
        ]
    }

    fn join(jt: JoinType, dir: &std::path::Path) -> StreamStreamJoin {
        let spec = JoinSpec {
            left: "imp".into(),
            right: JoinRight::Input("click".into()),
            join_type: jt,
            on: vec![("ad".into(), "ad".into())],
            within: Some(TimeRange {
                left: "it".into(),
                right: "ct".into(),
                lower_us: 0,
                upper_us: 60 * MIN,
            }),
            qualifiers: None,
        };
        let dir = crate::storage::Location::Local(dir.to_path_buf());
        StreamStreamJoin::new(
            spec,
            schema("it", "i"),
            schema("ct", "c"),
            &dir,
            STATE_NAME,
            0,
        )
        .unwrap()
    }

    /// Output rows as "impression tag/click tag" ("-" for null).
    fn tags(out: &[RecordBatch]) -> Vec<String> {
        let mut v = Vec::new();
        for b in out {
            let i = b
                .column_by_name("i")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            let c = b
                .column_by_name("c")
                .map(|c| c.as_any().downcast_ref::<StringArray>().unwrap().clone());
            for r in 0..b.num_rows() {
                let ct = c
                    .as_ref()
                    .and_then(|c| c.is_valid(r).then(|| c.value(r).to_owned()));
                v.push(format!(
                    "{}/{}",
                    if i.is_valid(r) { i.value(r) } else { "-" },
                    ct.unwrap_or_else(|| "-".into())
                ));
            }
        }
        v.sort();
        v
    }

    #[test]
    fn left_outer_matches_across_batches_and_emits_the_unmatched_once_after_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = join(JoinType::LeftOuter, dir.path());
        let (l, r) = (schema("it", "i"), schema("ct", "c"));
        // Batch 0: two impressions, one click for ad 1 at the same time.
        let out = j
            .process(
                0,
                0,
                rows(&l, &[(1, 0, "i1"), (2, 0, "i2")]),
                rows(&r, &[(1, 10, "c1")]),
            )
            .unwrap();
        assert_eq!(tags(&out), ["i1/c1"]);
        j.commit(0).unwrap();
        // Batch 1: a click for ad 2 within the hour joins the buffered impression; one for
        // ad 1 outside the hour (at 61 minutes) does not.
        let out = j
            .process(1, 0, vec![], rows(&r, &[(2, 30, "c2"), (1, 61, "late1")]))
            .unwrap();
        assert_eq!(tags(&out), ["i2/c2"]);
        j.commit(1).unwrap();
        // Batch 2: an impression for ad 3 nobody clicks; the watermark then passes 0 + 60
        // minutes for i1, i2 (matched: not emitted again).
        let out = j.process(2, 0, rows(&l, &[(3, 70, "i3")]), vec![]).unwrap();
        assert!(out.is_empty());
        j.commit(2).unwrap();
        let out = j.process(3, 61 * MIN / 1000, vec![], vec![]).unwrap();
        assert!(tags(&out).is_empty(), "i1, i2 matched: {:?}", tags(&out));
        j.commit(3).unwrap();
        // The watermark passes 70 + 60 minutes: i3 is emitted with nulls, exactly once.
        let out = j.process(4, 131 * MIN / 1000, vec![], vec![]).unwrap();
        assert_eq!(tags(&out), ["i3/-"]);
        j.commit(4).unwrap();
        let out = j.process(5, 200 * MIN / 1000, vec![], vec![]).unwrap();
        assert!(out.is_empty());
        assert_eq!(j.progress().num_rows_total, 0, "everything evicted");
    }

    #[test]
    fn a_restored_state_continues_exactly_where_the_committed_batch_left_it() {
        let dir = tempfile::tempdir().unwrap();
        let (l, r) = (schema("it", "i"), schema("ct", "c"));
        let mut j = join(JoinType::FullOuter, dir.path());
        j.process(
            0,
            0,
            rows(&l, &[(1, 0, "i1"), (2, 0, "i2")]),
            rows(&r, &[(9, 5, "c9")]),
        )
        .unwrap();
        j.commit(0).unwrap();
        j.process(1, 0, vec![], rows(&r, &[(1, 20, "c1")])).unwrap();
        j.commit(1).unwrap();
        // A new operator, as after a restart, restored to batch 1.
        let mut again = join(JoinType::FullOuter, dir.path());
        again.restore(Some(1)).unwrap();
        let out = again.process(2, 200 * MIN / 1000, vec![], vec![]).unwrap();
        // i1 matched c1; i2 and c9 never matched: each emitted once with nulls.
        assert_eq!(tags(&out), ["-/c9", "i2/-"]);
    }

    #[test]
    fn the_key_index_finds_exactly_the_linked_rows_of_a_key() {
        // Two chunks of 500 rows over 37 keys; unlink every third row; each key's rows must be
        // exactly what a plain model says.
        let schema = schema("it", "i");
        let encoder = KeyEncoder::new(&[DataType::Int64]).unwrap();
        let mut side = Side::default();
        let mut model: BTreeMap<i64, BTreeSet<(u64, u32)>> = BTreeMap::new();
        for cid in [3u64, 7] {
            let keys: Vec<(i64, i64, &str)> = (0..500)
                .map(|r| ((r * 7 + cid as i64) % 37, 0, "x"))
                .collect();
            let batch = rows(&schema, &keys).remove(0);
            let (k, _) = encoder.encode(&batch, &[0]).unwrap();
            let n = batch.num_rows();
            side.insert(
                cid,
                Chunk {
                    rows: batch,
                    times: vec![0; n],
                    keys: k,
                    matched: vec![false; n],
                    live: vec![true; n],
                    live_count: n,
                    slots: Vec::new(),
                },
            );
            for (r, (key, _, _)) in keys.iter().enumerate() {
                model.entry(*key).or_default().insert((cid, r as u32));
            }
        }
        for cid in [3u64, 7] {
            for r in (0..500u32).step_by(3) {
                side.unlink(cid, r);
                for rows in model.values_mut() {
                    rows.remove(&(cid, r));
                }
            }
        }
        for (key, expected) in &model {
            let probe = rows(&schema, &[(*key, 0, "x")]).remove(0);
            let (k, _) = encoder.encode(&probe, &[0]).unwrap();
            let mut found = BTreeSet::new();
            for (c, r) in side.rows_of(k.row(0).data()) {
                assert!(found.insert((c, r)), "({c}, {r}) twice");
            }
            assert_eq!(&found, expected, "key {key}");
        }
    }

    #[test]
    fn right_outer_emits_unmatched_clicks_and_semi_emits_each_impression_once() {
        let (l, r) = (schema("it", "i"), schema("ct", "c"));
        let dir = tempfile::tempdir().unwrap();
        let mut j = join(JoinType::RightOuter, dir.path());
        let out = j
            .process(
                0,
                0,
                rows(&l, &[(1, 0, "i1")]),
                rows(&r, &[(1, 5, "c1"), (2, 5, "c2")]),
            )
            .unwrap();
        assert_eq!(tags(&out), ["i1/c1"]);
        j.commit(0).unwrap();
        let out = j.process(1, 100 * MIN / 1000, vec![], vec![]).unwrap();
        assert_eq!(
            tags(&out),
            ["-/c2"],
            "the unmatched click, with a null impression"
        );

        let dir = tempfile::tempdir().unwrap();
        let mut j = join(JoinType::LeftSemi, dir.path());
        // Two clicks for i1 (one now, one later): i1 comes out once; i2 never.
        let out = j
            .process(
                0,
                0,
                rows(&l, &[(1, 0, "i1"), (2, 0, "i2")]),
                rows(&r, &[(1, 5, "c1")]),
            )
            .unwrap();
        assert_eq!(tags(&out), ["i1/-"]);
        j.commit(0).unwrap();
        let out = j.process(1, 0, vec![], rows(&r, &[(1, 9, "c1b")])).unwrap();
        assert!(out.is_empty(), "{:?}", tags(&out));
        let out = j.process(2, 100 * MIN / 1000, vec![], vec![]).unwrap();
        assert!(
            out.is_empty(),
            "a semi join emits nothing for the unmatched"
        );
        assert_eq!(j.output_schema().fields().len(), 3, "left columns only");
    }

    #[test]
    fn late_rows_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (l, r) = (schema("it", "i"), schema("ct", "c"));
        let mut j = join(JoinType::Inner, dir.path());
        let out = j
            .process(
                0,
                30 * MIN / 1000,
                rows(&l, &[(1, 10, "old"), (1, 40, "new")]),
                rows(&r, &[(1, 45, "c")]),
            )
            .unwrap();
        assert_eq!(tags(&out), ["new/c"]);
        assert_eq!(j.progress().num_rows_dropped_by_watermark, 1);
    }
}
