//! [`Journal`]: the append-only log on sled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::codec::{self, key, seq_of};
use crate::record::{Checkpoint, Draft, Record, RecordRef};
use crate::subscribe::{LiveTx, Subscription};
use crate::{JournalError, Result};

const EVENTS: &str = "events";
const CHECKPOINTS: &str = "checkpoints";
const QUARANTINE: &str = "quarantine";
const CUTS: &str = "cuts";
/// A live subscriber's receiving end and its "lagged" flag.
type LiveRx = (mpsc::Receiver<Arc<Record>>, Arc<AtomicBool>);
/// How many checkpoints are kept (the newest; older ones are pruned).
const KEEP_CHECKPOINTS: usize = 3;

/// How to open a journal.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// sled page cache size in bytes.
    pub cache_bytes: u64,
    /// Capacity of each live subscriber's buffer (records); a subscriber whose buffer
    /// is full is ended with [`crate::SubEvent::Lagged`].
    pub subscriber_buffer: usize,
    /// Cut the journal at a bad record found at open (move it and everything after it
    /// to quarantine). When false (offline inspection), the bad record is reported in
    /// [`OpenReport::cut`] with `quarantined: 0`, reads stop before it, and nothing is
    /// moved.
    pub repair: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            cache_bytes: 64 * 1024 * 1024,
            subscriber_buffer: 4096,
            repair: true,
        }
    }
}

/// Where the journal was cut at open.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Cut {
    /// The first bad sequence number: it and everything after it were quarantined.
    pub at_seq: u64,
    /// Why that record was bad.
    pub reason: String,
    /// How many records were moved to quarantine (a frame too damaged for its records
    /// to be located is moved whole and counts as one).
    pub quarantined: u64,
}

/// What [`Journal::open`] found.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, Default)]
pub struct OpenReport {
    /// The last good sequence number (0 for an empty journal).
    pub last_seq: u64,
    /// The sequence number of the newest valid checkpoint, if any.
    pub checkpoint_seq: Option<u64>,
    /// How many records after the checkpoint were verified.
    pub verified_tail: u64,
    /// A cut made because of a bad record, if any.
    pub cut: Option<Cut>,
    /// Checkpoints that failed their checksum and were ignored.
    pub bad_checkpoints: Vec<u64>,
}

/// One checkpoint as listed by [`Journal::stats`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CheckpointInfo {
    /// Sequence number the state reflects.
    pub seq: u64,
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// Size of the state bytes.
    pub bytes: u64,
}

/// Numbers about a journal.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct JournalStats {
    /// Directory.
    pub path: PathBuf,
    /// Records held.
    pub records: u64,
    /// First sequence number held (0 when empty).
    pub first_seq: u64,
    /// Last durable sequence number (0 when empty).
    pub last_seq: u64,
    /// Checkpoints held, newest first.
    pub checkpoints: Vec<CheckpointInfo>,
    /// Records held in quarantine after cuts.
    pub quarantined: u64,
    /// Cuts made so far.
    pub cuts: u64,
    /// Bytes on disk as sled reports them.
    pub size_on_disk: u64,
    /// Live subscribers now.
    pub subscribers: usize,
    /// Durable commits since this process opened the journal (one flush and fsync
    /// each, whatever number of batches it made durable); with `appended_since_open`
    /// it shows how well group commit groups.
    pub batches_since_open: u64,
    /// Records appended since this process opened the journal.
    pub appended_since_open: u64,
}

/// One problem found by [`Journal::verify`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Problem {
    /// The sequence number concerned.
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

/// The result of a full verification.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct VerifyReport {
    /// Records checked.
    pub checked: u64,
    /// First sequence number seen.
    pub first_seq: u64,
    /// Last sequence number seen.
    pub last_seq: u64,
    /// Checkpoints checked.
    pub checkpoints_checked: u64,
    /// Everything found wrong (bad records, gaps, bad checkpoints).
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Receives what [`Journal::open_with`] reads while it verifies the journal, so that a
/// daemon rebuilds its state in the same single pass.
pub trait Replay {
    /// Offered the newest valid checkpoint (if any); returns the sequence number the
    /// replayer's state now reflects: the checkpoint's if it used it, 0 to be given
    /// every record from the start.
    fn checkpoint(&mut self, checkpoint: Option<&Checkpoint>) -> u64;
    /// Given each verified record after that, in order, borrowed from the stored bytes
    /// (copy what is kept: [`RecordRef::to_record`]). An error aborts the open (the
    /// record is intact but the replayer cannot use it).
    fn record(&mut self, record: RecordRef<'_>) -> std::result::Result<(), String>;
}

/// A [`Replay`] that takes the checkpoint and ignores the records.
struct VerifyOnly;

impl Replay for VerifyOnly {
    fn checkpoint(&mut self, checkpoint: Option<&Checkpoint>) -> u64 {
        checkpoint.map_or(0, |c| c.seq)
    }
    fn record(&mut self, _record: RecordRef<'_>) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// The append-only journal. Cheap to clone (all clones share one sled database).
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    path: PathBuf,
    db: sled::Db,
    events: sled::Tree,
    checkpoints: sled::Tree,
    quarantine: sled::Tree,
    cuts: sled::Tree,
    /// Serializes writes into sled; holds the written tip (the last sequence number
    /// handed out, durable or not).
    write: Mutex<u64>,
    /// The durable tip and the live subscribers; publishing happens under this lock.
    pub(crate) live: Mutex<Live>,
    /// Notified whenever the published tip moves, the journal fails or closes: a
    /// commit waits on it for the batches written before its own to be published.
    published: Condvar,
    failed: AtomicBool,
    /// sled's `flush` writes its log with `sync_file_range`, which neither flushes the
    /// drive's cache nor waits for metadata; an `fdatasync` of the same file after it
    /// makes a batch durable against power loss, not only against a crash.
    log_file: Option<std::fs::File>,
    batches: AtomicU64,
    appended: AtomicU64,
    pub(crate) opts: OpenOptions,
}

pub(crate) struct Live {
    /// Last durable (and published) sequence number.
    pub(crate) last_seq: u64,
    pub(crate) subscribers: Vec<LiveTx>,
    pub(crate) closed: bool,
    /// Opened without repair and a bad record was found here: appends are refused, as
    /// they would write over the bad record and leave the records after it in place.
    pub(crate) unrepaired_cut: Option<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic while holding it; the data it guards (a counter and
    // a list of senders) is still consistent, so keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Journal {
    /// Opens (or creates) the journal in `path`, verifies the tail that recovery will
    /// replay and cuts it at the first bad record.
    pub fn open(path: impl AsRef<Path>, opts: OpenOptions) -> Result<(Journal, OpenReport)> {
        Journal::open_with(path, opts, &mut VerifyOnly)
    }

    /// As [`Journal::open`], handing the newest checkpoint and then every verified record
    /// after it to `replay` during the verification pass (one read of the journal).
    /// Records after a bad one are never handed over.
    pub fn open_with(
        path: impl AsRef<Path>,
        opts: OpenOptions,
        replay: &mut dyn Replay,
    ) -> Result<(Journal, OpenReport)> {
        let path = path.as_ref().to_path_buf();
        let db = open_sled(&path, opts.cache_bytes)?;
        let events = db
            .open_tree(EVENTS)
            .map_err(JournalError::io("opening events"))?;
        let checkpoints = db
            .open_tree(CHECKPOINTS)
            .map_err(JournalError::io("opening checkpoints"))?;
        let quarantine = db
            .open_tree(QUARANTINE)
            .map_err(JournalError::io("opening quarantine"))?;
        let cuts = db
            .open_tree(CUTS)
            .map_err(JournalError::io("opening cuts"))?;
        let log_file = std::fs::File::open(path.join("db")).ok();
        let journal = Journal {
            inner: Arc::new(Inner {
                path,
                db,
                events,
                checkpoints,
                quarantine,
                cuts,
                write: Mutex::new(0),
                live: Mutex::new(Live {
                    last_seq: 0,
                    subscribers: Vec::new(),
                    closed: false,
                    unrepaired_cut: None,
                }),
                published: Condvar::new(),
                failed: AtomicBool::new(false),
                log_file,
                batches: AtomicU64::new(0),
                appended: AtomicU64::new(0),
                opts,
            }),
        };
        let report = journal.recover_tail(replay)?;
        *lock(&journal.inner.write) = report.last_seq;
        {
            let mut live = lock(&journal.inner.live);
            live.last_seq = report.last_seq;
            if !journal.inner.opts.repair {
                live.unrepaired_cut = report.cut.as_ref().map(|c| c.at_seq);
            }
        }
        Ok((journal, report))
    }

    /// Verifies records after the newest valid checkpoint; quarantines from the first
    /// bad one on. Refuses to open when the newest valid checkpoint's record is not held.
    fn recover_tail(&self, replay: &mut dyn Replay) -> Result<OpenReport> {
        let mut report = OpenReport::default();
        // (Any first key counts: a malformed one must not make the tail look empty.)
        let has_records = self
            .inner
            .events
            .first()
            .map_err(JournalError::io("reading"))?
            .is_some();
        // Newest checkpoint whose checksum holds. Without one the walk starts at 1:
        // records are contiguous from 1, so a missing first record is a gap like any
        // other (starting at the first key found would silently accept it).
        let mut newest: Option<Checkpoint> = None;
        for item in self.inner.checkpoints.iter().rev() {
            let (k, v) = item.map_err(JournalError::io("reading checkpoints"))?;
            let seq = seq_of(&k).unwrap_or(0);
            match codec::decode::<Checkpoint>(&k, &v) {
                Ok(cp) if cp.seq == seq => {
                    report.checkpoint_seq = Some(seq);
                    newest = Some(cp);
                    break;
                }
                Ok(_) | Err(_) => report.bad_checkpoints.push(seq),
            }
        }
        if let Some(cp) = report.checkpoint_seq {
            // The record the checkpoint reflects must be held; otherwise the walk below
            // (which starts after it) would find nothing and take the checkpoint's seq
            // as the tip, and the next append would leave a gap.
            // The first value at or after `key(cp)` is the frame that holds `cp`, if any.
            // (A frame whose header cannot be read counts as holding it: the walk below
            // reports what is wrong with it.)
            let holds = match self
                .inner
                .events
                .range(key(cp)..)
                .next()
                .transpose()
                .map_err(JournalError::io("reading"))?
            {
                Some((k, v)) => codec::frame(&k, &v).map_or(true, |f| f.first <= cp),
                None => false,
            };
            if !holds {
                let last = match self
                    .inner
                    .events
                    .last()
                    .map_err(JournalError::io("reading"))?
                {
                    Some((k, _)) => seq_of(&k).unwrap_or(0),
                    None => 0,
                };
                // Records the checkpoint covers are gone: that cannot be explained by a
                // torn tail. Refuse rather than guess.
                return Err(JournalError::Corrupt {
                    seq: cp,
                    reason: format!(
                        "checkpoint at {cp} is beyond the records held (record {cp} is missing, the last one is {last}); the journal is damaged"
                    ),
                });
            }
        }
        // The replayer takes the checkpoint or not; the walk starts after what it has.
        let taken = replay.checkpoint(newest.as_ref());
        drop(newest);
        let start = taken + 1;
        // Walk the tail: checksum, key and contiguity.
        let mut expect = start;
        let mut last_good = start.saturating_sub(1);
        let mut bad: Option<(u64, String)> = None;
        if has_records {
            'walk: for item in self.inner.events.range(key(start)..) {
                let (k, v) = item.map_err(JournalError::io("reading tail"))?;
                let mut frame = match codec::frame(&k, &v) {
                    Ok(f) => f,
                    Err(reason) => {
                        bad = Some((expect, reason));
                        break;
                    }
                };
                if frame.first > expect {
                    let found = frame.first;
                    bad = Some((expect, format!("gap: expected {expect}, found {found}")));
                    break;
                }
                // Records before the start (in the frame that holds it) are covered by
                // the checkpoint: located, not decoded.
                while frame.next_seq() < expect {
                    if let Some((_, Err(reason))) = frame.raw_entry(&v) {
                        bad = Some((expect, reason));
                        break 'walk;
                    }
                }
                while let Some((seq, body)) = frame.next_entry(&v) {
                    match body.and_then(|b| decode_record_ref(seq, b)) {
                        Ok(record) => replay
                            .record(record)
                            .map_err(|reason| JournalError::Replay { seq, reason })?,
                        Err(reason) => {
                            bad = Some((seq, reason));
                            break 'walk;
                        }
                    }
                    last_good = seq;
                    expect = seq + 1;
                    report.verified_tail += 1;
                }
            }
        } else {
            last_good = 0;
        }
        if let Some((at_seq, reason)) = bad {
            tracing::error!(at_seq, %reason, path = %self.inner.path.display(), "journal: bad record, cutting");
            let quarantined = if self.inner.opts.repair {
                self.quarantine_from(at_seq, &reason)?
            } else {
                0
            };
            if self.inner.opts.repair {
                // A checkpoint at or past the cut claims records that are gone.
                for item in self.inner.checkpoints.range(key(at_seq)..) {
                    let (k, _) = item.map_err(JournalError::io("reading checkpoints"))?;
                    self.inner
                        .checkpoints
                        .remove(k)
                        .map_err(JournalError::io("removing a checkpoint past the cut"))?;
                }
            }
            report.cut = Some(Cut {
                at_seq,
                reason,
                quarantined,
            });
        }
        if !report.bad_checkpoints.is_empty() && self.inner.opts.repair {
            tracing::warn!(bad = ?report.bad_checkpoints, "journal: ignoring corrupt checkpoints");
            for seq in &report.bad_checkpoints {
                self.inner
                    .checkpoints
                    .remove(key(*seq))
                    .map_err(JournalError::io("removing bad checkpoint"))?;
            }
        }
        report.last_seq = last_good;
        self.flush()?;
        Ok(report)
    }

    /// Moves every record with `seq >= from` into the quarantine tree and records the cut.
    /// A frame that holds records on both sides of `from` is split: the records before
    /// it stay, as a new frame under `key(from - 1)`. Each moved record that can be
    /// located is quarantined on its own (as a one-record frame under `time ‖ key`); a
    /// value whose records cannot be located is moved whole and counts as one.
    fn quarantine_from(&self, from: u64, reason: &str) -> Result<u64> {
        let mut moved = 0u64;
        let items: Vec<(sled::IVec, sled::IVec)> = self
            .inner
            .events
            .range(key(from)..)
            .collect::<std::result::Result<_, _>>()
            .map_err(JournalError::io("listing records to quarantine"))?;
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let qkey = |k: &[u8]| {
            let mut qk = nanos.to_be_bytes().to_vec();
            qk.extend_from_slice(k);
            qk
        };
        for (k, v) in items {
            let mut kept = Vec::new();
            let mut kept_count = 0u32;
            let mut singles = Vec::new();
            let mut whole = true;
            if let Ok(mut frame) = codec::frame(&k, &v) {
                if v.first() == Some(&codec::FORMAT_FRAME) {
                    whole = false;
                    while let Some((seq, entry)) = frame.raw_entry(&v) {
                        match entry {
                            // Only records whose checksum holds stay (the walk verified
                            // them; a wrong count would shift them and fail here).
                            Ok(entry) if seq < from && codec::check_entry(seq, entry).is_ok() => {
                                kept.extend_from_slice(entry);
                                kept_count += 1;
                            }
                            Ok(_) if seq < from => {
                                kept_count = 0;
                                whole = true;
                                break;
                            }
                            Ok(entry) => singles.push((seq, codec::frame_from_entries(1, entry))),
                            Err(_) => {
                                whole = true;
                                break;
                            }
                        }
                    }
                }
            }
            // Never over an existing value: the records before `from` are then held
            // there already.
            let free = !self
                .inner
                .events
                .contains_key(key(from - 1))
                .map_err(JournalError::io("reading"))?;
            if kept_count > 0 && free {
                self.inner
                    .events
                    .insert(key(from - 1), codec::frame_from_entries(kept_count, &kept))
                    .map_err(JournalError::io("keeping the good part of a frame"))?;
            }
            if whole {
                self.inner
                    .quarantine
                    .insert(qkey(&k), v)
                    .map_err(JournalError::io("quarantining"))?;
                moved += 1;
            } else {
                for (seq, value) in singles {
                    self.inner
                        .quarantine
                        .insert(qkey(&key(seq)), value)
                        .map_err(JournalError::io("quarantining"))?;
                    moved += 1;
                }
            }
            self.inner
                .events
                .remove(&k)
                .map_err(JournalError::io("quarantining"))?;
        }
        let cut_id = self
            .inner
            .db
            .generate_id()
            .map_err(JournalError::io("recording cut"))?;
        let note = format!(
            "{} at_seq={from} moved={moved} reason={reason}",
            Utc::now().to_rfc3339()
        );
        self.inner
            .cuts
            .insert(cut_id.to_be_bytes(), note.as_bytes())
            .map_err(JournalError::io("recording cut"))?;
        Ok(moved)
    }

    /// The directory of this journal.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The last durable sequence number (0 when empty).
    pub fn last_seq(&self) -> u64 {
        lock(&self.inner.live).last_seq
    }

    /// Appends `drafts` with contiguous sequence numbers and returns only after they are
    /// durable (sled flush, then `fdatasync` of its log), in one sled batch of frames. Returns the committed records; live
    /// subscribers receive them after the flush. An empty batch is a no-op.
    pub fn append_batch(&self, drafts: Vec<Draft>) -> Result<Vec<Arc<Record>>> {
        self.append_batch_then(drafts, |_| {})
    }

    /// As [`Journal::append_batch`], running `before_publish` with the committed records
    /// after they are durable and before any subscriber sees them (the daemon applies
    /// them to its state there, so a subscriber never learns of an event before the
    /// state reflects it). No other append is published in between.
    pub fn append_batch_then(
        &self,
        drafts: Vec<Draft>,
        before_publish: impl FnOnce(&[Arc<Record>]),
    ) -> Result<Vec<Arc<Record>>> {
        let mut written = [self.write(drafts)?];
        self.commit(&mut written, |batches| before_publish(batches[0].records()))?;
        let [written] = written;
        Ok(written.into_records())
    }

    /// The first half of an append: gives `drafts` the next contiguous sequence numbers
    /// and writes them into sled's log as one batch of frames, without waiting for the
    /// disk. They are neither durable nor visible (reads, subscribers and
    /// [`Journal::last_seq`] stop before them) until [`Journal::commit`].
    ///
    /// This lets a writer prepare the next batch while the previous one is being made
    /// durable, and make several batches durable with one flush. Every [`Written`] must
    /// be committed, in the order written: one dropped uncommitted fails the journal
    /// (its records could become durable without ever being published).
    pub fn write(&self, drafts: Vec<Draft>) -> Result<Written> {
        self.write_units(vec![drafts])
    }

    /// As [`Journal::write`] for several appends at once: each unit stays atomic (after
    /// a crash it is there whole or not at all; a prefix of the units may survive one
    /// that happens before the commit), and the units are packed into as few sled
    /// values as the frame limits allow. A unit that fits a frame is one sled insert,
    /// which, unlike a sled batch, does not wait for a flush in progress; a larger unit
    /// is split into frames written as one sled batch.
    pub fn write_units(&self, units: Vec<Vec<Draft>>) -> Result<Written> {
        let mut tip = lock(&self.inner.write);
        if self.inner.failed.load(Ordering::Acquire) {
            return Err(JournalError::Failed);
        }
        {
            let live = lock(&self.inner.live);
            if live.closed {
                return Err(JournalError::Closed);
            }
            if let Some(at) = live.unrepaired_cut {
                return Err(JournalError::Invalid(format!(
                    "the journal was opened without repair and has a bad record at {at}; \
                     appending would write over it and keep the records after it"
                )));
            }
        }
        // Everything is encoded before anything reaches sled: an encoding error refuses
        // the whole call and leaves nothing behind.
        let (records, pieces) = pack(*tip + 1, units)?;
        let mut written = Written {
            journal: self.clone(),
            records,
            committed: false,
        };
        for piece in pieces {
            let inserted = match piece {
                Piece::One(k, v) => self.inner.events.insert(k, v).map(drop),
                Piece::Atomic(frames) => {
                    let mut batch = sled::Batch::default();
                    for (k, v) in frames {
                        batch.insert(&k, v);
                    }
                    self.inner.events.apply_batch(batch)
                }
            };
            if let Err(e) = inserted {
                // Part of it may reach the disk: nothing more may be written (the
                // daemon restarts and replays what is durable).
                written.records.clear();
                self.fail();
                return Err(JournalError::io("appending")(e));
            }
        }
        *tip += written.records.len() as u64;
        Ok(written)
    }

    /// The second half of an append: makes `batches` (written by [`Journal::write`], in
    /// the order given, which must be the order written) durable with one flush and
    /// `fdatasync`, waits until every batch written before them is published, runs
    /// `before_publish` with them and then hands their records to live subscribers.
    ///
    /// An error leaves the journal failed unless it is [`JournalError::Closed`]: the
    /// batches may or may not be on disk, so nothing more may be written.
    pub fn commit(
        &self,
        batches: &mut [Written],
        before_publish: impl FnOnce(&[Written]),
    ) -> Result<()> {
        // The first seq of the batches, checked to be contiguous on the way.
        let mut first = None;
        let mut expect = None;
        for b in batches.iter().filter(|b| !b.records.is_empty()) {
            if b.journal.inner_ptr() != self.inner_ptr() {
                return Err(self.fail_with(JournalError::Invalid(
                    "a batch written by another journal was committed here".into(),
                )));
            }
            if let Some(e) = expect.filter(|&e| e != b.first_seq()) {
                return Err(self.fail_with(JournalError::Invalid(format!(
                    "batches committed out of order: expected seq {e}, got {}",
                    b.first_seq()
                ))));
            }
            first.get_or_insert(b.first_seq());
            expect = Some(b.last_seq() + 1);
        }
        let Some(first) = first else {
            return Ok(());
        };
        // From here each batch counts as handled: an error below fails the journal
        // (or it is closed), so their drop need not fail it.
        let result = self.commit_inner(batches, first, before_publish);
        for b in batches.iter_mut() {
            b.committed = true;
        }
        result
    }

    fn commit_inner(
        &self,
        batches: &[Written],
        first: u64,
        before_publish: impl FnOnce(&[Written]),
    ) -> Result<()> {
        if self.inner.failed.load(Ordering::Acquire) {
            return Err(JournalError::Failed);
        }
        // One flush makes everything written so far durable, other writers' batches
        // included.
        if let Err(e) = self.flush() {
            return Err(self.fail_with(e));
        }
        // Our turn: every earlier batch published (their committers publish in order).
        {
            let mut live = lock(&self.inner.live);
            loop {
                if self.inner.failed.load(Ordering::Acquire) {
                    return Err(JournalError::Failed);
                }
                if live.closed {
                    return Err(JournalError::Closed);
                }
                match (live.last_seq + 1).cmp(&first) {
                    std::cmp::Ordering::Equal => break,
                    std::cmp::Ordering::Greater => {
                        let published = live.last_seq;
                        drop(live);
                        return Err(self.fail_with(JournalError::Invalid(format!(
                            "batch from seq {first} committed after seq {published} was published"
                        ))));
                    }
                    std::cmp::Ordering::Less => {
                        live = self
                            .inner
                            .published
                            .wait(live)
                            .unwrap_or_else(|p| p.into_inner());
                    }
                }
            }
        }
        let count: u64 = batches.iter().map(|b| b.records.len() as u64).sum();
        self.inner.batches.fetch_add(1, Ordering::Relaxed);
        self.inner.appended.fetch_add(count, Ordering::Relaxed);
        // The records are durable but not yet published: if `before_publish` panics, the
        // tip stays behind them and a later append would reuse their seqs and overwrite
        // them. Fail the journal instead (restart replays what is durable).
        if let Err(panic) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| before_publish(batches)))
        {
            self.fail();
            std::panic::resume_unwind(panic);
        }
        let mut live = lock(&self.inner.live);
        for b in batches {
            if let Some(last) = b.records.last() {
                live.last_seq = last.seq;
            }
            live.subscribers.retain(|sub| sub.send_all(&b.records));
        }
        drop(live);
        self.inner.published.notify_all();
        Ok(())
    }

    fn inner_ptr(&self) -> *const Inner {
        Arc::as_ptr(&self.inner)
    }

    /// Marks the journal failed (nothing more is written) and wakes waiting commits.
    fn fail(&self) {
        self.inner.failed.store(true, Ordering::Release);
        let _live = lock(&self.inner.live);
        self.inner.published.notify_all();
    }

    fn fail_with(&self, e: JournalError) -> JournalError {
        self.fail();
        e
    }

    fn flush(&self) -> Result<()> {
        self.inner
            .db
            .flush()
            .map_err(JournalError::io("flushing"))?;
        if let Some(f) = &self.inner.log_file {
            f.sync_data().map_err(|e| JournalError::Io {
                op: "syncing the log",
                source: sled::Error::Io(e),
            })?;
        }
        Ok(())
    }

    /// Reads up to `limit` records with `seq >= from`, stopping at the durable tip.
    /// A bad record ends the read with [`JournalError::Corrupt`].
    pub fn read_from(&self, from: u64, limit: usize) -> Result<Vec<Arc<Record>>> {
        self.iter_from(from)
            .take(limit)
            .map(|r| r.map(Arc::new))
            .collect()
    }

    /// Iterates records with `seq >= from` up to the durable tip at the time of the
    /// call. Yields [`JournalError::Corrupt`] at a bad record or a gap and then ends.
    pub fn iter_from(&self, from: u64) -> Iter {
        let tip = self.last_seq();
        Iter {
            inner: self.inner.events.range(key(from.max(1))..=key(tip)),
            current: None,
            expect: from.max(1),
            tip,
            done: tip == 0 || from > tip,
        }
    }

    /// Starts a subscription that yields every record with `seq >= from` exactly once,
    /// in order: first from disk, then live.
    pub fn subscribe_from(&self, from: u64) -> Subscription {
        Subscription::new(self.clone(), from.max(1))
    }

    /// Registers a live sender if the durable tip is below `next`; otherwise
    /// returns `None` (the caller reads more from disk first). `Err(Closed)` after close.
    pub(crate) fn register_live(&self, next: u64) -> Result<Option<LiveRx>> {
        let mut live = lock(&self.inner.live);
        if live.closed {
            return Err(JournalError::Closed);
        }
        // Durable records at or after `next` not yet read from disk: read them first.
        // (A `next` beyond the tip registers; older live records are skipped.)
        if live.last_seq >= next {
            return Ok(None);
        }
        let (tx, rx, lagged) = LiveTx::new(self.inner.opts.subscriber_buffer.max(1));
        live.subscribers.push(tx);
        Ok(Some((rx, lagged)))
    }

    /// Stores a checkpoint of derived state at `seq` (which must be durable) and
    /// prunes all but the newest few.
    pub fn checkpoint(&self, seq: u64, data: Vec<u8>) -> Result<()> {
        let tip = self.last_seq();
        if seq == 0 || seq > tip {
            return Err(JournalError::Invalid(format!(
                "checkpoint at {seq} but the journal holds 1..={tip}"
            )));
        }
        let cp = Checkpoint {
            seq,
            at: Utc::now(),
            data,
        };
        let k = key(seq);
        self.inner
            .checkpoints
            .insert(k, codec::encode(&k, &cp)?)
            .map_err(JournalError::io("writing checkpoint"))?;
        let keys: Vec<sled::IVec> = self
            .inner
            .checkpoints
            .iter()
            .keys()
            .collect::<std::result::Result<_, _>>()
            .map_err(JournalError::io("listing checkpoints"))?;
        if keys.len() > KEEP_CHECKPOINTS {
            for k in &keys[..keys.len() - KEEP_CHECKPOINTS] {
                self.inner
                    .checkpoints
                    .remove(k)
                    .map_err(JournalError::io("pruning checkpoints"))?;
            }
        }
        self.flush()
    }

    /// The newest checkpoint whose checksum holds, if any.
    pub fn latest_checkpoint(&self) -> Result<Option<Checkpoint>> {
        for item in self.inner.checkpoints.iter().rev() {
            let (k, v) = item.map_err(JournalError::io("reading checkpoints"))?;
            match codec::decode::<Checkpoint>(&k, &v) {
                Ok(cp) if Some(cp.seq) == seq_of(&k) && cp.seq <= self.last_seq() => {
                    return Ok(Some(cp))
                }
                Ok(_) | Err(_) => continue,
            }
        }
        Ok(None)
    }

    /// Checks every record and checkpoint: checksums, keys, contiguity.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            checked: 0,
            first_seq: 0,
            last_seq: 0,
            checkpoints_checked: 0,
            problems: Vec::new(),
        };
        let mut prev: Option<u64> = None;
        for item in self.inner.events.iter() {
            let (k, v) = item.map_err(JournalError::io("verifying"))?;
            let mut frame = match codec::frame(&k, &v) {
                Ok(f) => f,
                Err(reason) => {
                    report.checked += 1;
                    let seq = seq_of(&k);
                    report.problems.push(Problem {
                        seq: seq.unwrap_or_else(|| prev.map_or(0, |p| p + 1)),
                        reason,
                    });
                    if let Some(seq) = seq {
                        prev = Some(seq);
                        report.last_seq = seq;
                    }
                    continue;
                }
            };
            while let Some((seq, body)) = frame.next_entry(&v) {
                report.checked += 1;
                if report.first_seq == 0 {
                    report.first_seq = seq;
                    // Records are contiguous from 1: missing first ones are a gap too.
                    if prev.is_none() && seq > 1 {
                        report.problems.push(Problem {
                            seq: 1,
                            reason: format!("gap: records 1..{seq} are missing"),
                        });
                    }
                }
                if let Some(p) = prev {
                    if seq != p + 1 {
                        report.problems.push(Problem {
                            seq: p + 1,
                            reason: format!("gap: records {}..{} are missing", p + 1, seq),
                        });
                    }
                }
                if let Err(reason) = body.and_then(|b| decode_record_ref(seq, b).map(|_| ())) {
                    let unread = frame.last - seq;
                    report.problems.push(Problem {
                        seq,
                        reason: if unread > 0 {
                            format!("{reason} (the {unread} records after it in its frame are not checked)")
                        } else {
                            reason
                        },
                    });
                }
                prev = Some(seq);
                report.last_seq = seq;
            }
            // A frame read only in part: continue after it without a false gap.
            prev = Some(frame.last);
            report.last_seq = frame.last;
        }
        for item in self.inner.checkpoints.iter() {
            let (k, v) = item.map_err(JournalError::io("verifying checkpoints"))?;
            report.checkpoints_checked += 1;
            let seq = seq_of(&k).unwrap_or(0);
            if let Err(reason) = codec::decode::<Checkpoint>(&k, &v) {
                report.problems.push(Problem {
                    seq,
                    reason: format!("checkpoint: {reason}"),
                });
            }
        }
        Ok(report)
    }

    /// Numbers about the journal.
    pub fn stats(&self) -> Result<JournalStats> {
        let first_seq = match self
            .inner
            .events
            .first()
            .map_err(JournalError::io("stats"))?
        {
            Some((k, v)) => codec::frame(&k, &v).map_or(seq_of(&k).unwrap_or(0), |f| f.first),
            None => 0,
        };
        // Records, not sled values: a frame counts as the records it holds.
        let mut records = 0u64;
        for item in self.inner.events.iter() {
            let (k, v) = item.map_err(JournalError::io("stats"))?;
            records += codec::frame(&k, &v).map_or(1, |f| f.count());
        }
        let mut checkpoints = Vec::new();
        for item in self.inner.checkpoints.iter().rev() {
            let (k, v) = item.map_err(JournalError::io("stats"))?;
            if let Ok(cp) = codec::decode::<Checkpoint>(&k, &v) {
                checkpoints.push(CheckpointInfo {
                    seq: cp.seq,
                    at: cp.at,
                    bytes: cp.data.len() as u64,
                });
            }
        }
        let (last_seq, subscribers) = {
            let live = lock(&self.inner.live);
            (live.last_seq, live.subscribers.len())
        };
        Ok(JournalStats {
            path: self.inner.path.clone(),
            records,
            first_seq,
            last_seq,
            checkpoints,
            quarantined: self.inner.quarantine.len() as u64,
            cuts: self.inner.cuts.len() as u64,
            size_on_disk: self.inner.db.size_on_disk().unwrap_or(0),
            subscribers,
            batches_since_open: self.inner.batches.load(Ordering::Relaxed),
            appended_since_open: self.inner.appended.load(Ordering::Relaxed),
        })
    }

    /// The cuts recorded so far, oldest first (one line each).
    pub fn cuts(&self) -> Result<Vec<String>> {
        self.inner
            .cuts
            .iter()
            .values()
            .map(|v| {
                v.map(|v| String::from_utf8_lossy(&v).into_owned())
                    .map_err(JournalError::io("reading cuts"))
            })
            .collect()
    }

    /// Flushes, refuses further appends and ends every live subscription.
    pub fn close(&self) -> Result<()> {
        let _w = lock(&self.inner.write);
        {
            let mut live = lock(&self.inner.live);
            live.closed = true;
            live.subscribers.clear();
        }
        self.inner.published.notify_all();
        self.flush()
    }

    /// Counts records per topic (for `berth journal stats` offline).
    pub fn topic_counts(&self) -> Result<BTreeMap<String, u64>> {
        let mut counts = BTreeMap::new();
        for r in self.iter_from(1) {
            *counts.entry(r?.topic).or_insert(0) += 1;
        }
        Ok(counts)
    }
}

fn open_sled(path: &Path, cache_bytes: u64) -> Result<sled::Db> {
    std::fs::create_dir_all(path).map_err(|e| JournalError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let cfg = sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes)
        .mode(sled::Mode::LowSpace)
        // We flush explicitly after every batch; no background flusher needed.
        .flush_every_ms(None);
    // sled may panic on some forms of damage to its own files; a panic must never take
    // the caller down, it is a clear error instead.
    let path_buf = path.to_path_buf();
    // sled releases its file lock when its last internal handle goes, which can be a
    // moment after the `Db` is dropped: a reopen in the same process right after a drop
    // would see the lock still held. Wait a little before calling it `Locked`.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let open = || std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cfg.open()));
    let mut opened = open();
    while matches!(&opened, Ok(Err(sled::Error::Io(e))) if is_lock_error(e))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
        opened = open();
    }
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Io(e))) if is_lock_error(&e) => {
            Err(JournalError::Locked { path: path_buf })
        }
        Ok(Err(e)) => Err(JournalError::Open {
            path: path_buf,
            reason: e.to_string(),
        }),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "sled panicked".into());
            Err(JournalError::Open {
                path: path_buf,
                reason: format!("sled could not recover its files: {reason}"),
            })
        }
    }
}

/// How long [`Journal::open`] waits for sled's directory lock before `Locked`.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// sled reports a held directory lock as an `Other` IO error "could not acquire lock".
fn is_lock_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

/// Decodes a record without copying it out of `body`, checking that it carries the
/// sequence number it is stored under.
fn decode_record_ref(seq: u64, body: &[u8]) -> std::result::Result<RecordRef<'_>, String> {
    let r: RecordRef<'_> =
        rmp_serde::from_slice(body).map_err(|e| format!("undecodable body: {e}"))?;
    if r.seq == seq {
        Ok(r)
    } else {
        Err(format!("record says seq {} under key {seq}", r.seq))
    }
}

/// Checks that a decoded record carries the sequence number it is stored under.
fn decode_record(seq: u64, body: &[u8]) -> std::result::Result<Record, String> {
    let r: Record = codec::decode_body(body)?;
    if r.seq == seq {
        Ok(r)
    } else {
        Err(format!("record says seq {} under key {seq}", r.seq))
    }
}

/// Iterator over stored records (see [`Journal::iter_from`]).
pub struct Iter {
    inner: sled::Iter,
    /// The frame being read and its cursor.
    current: Option<(sled::IVec, codec::Frame)>,
    /// The next seq: records are contiguous, so the first one must be `from` itself.
    expect: u64,
    /// The durable tip when the iteration started; everything up to it must be there.
    tip: u64,
    done: bool,
}

impl Iter {
    fn step(&mut self) -> Option<Result<Record>> {
        loop {
            if let Some((v, frame)) = &mut self.current {
                // Records before `from` in the first frame: located, not decoded.
                while frame.next_seq() < self.expect {
                    if let Some((_, Err(reason))) = frame.raw_entry(v) {
                        return Some(Err(JournalError::Corrupt {
                            seq: self.expect,
                            reason,
                        }));
                    }
                }
                if let Some((seq, body)) = frame.next_entry(v) {
                    let rec = body
                        .and_then(|b| decode_record(seq, b))
                        .map_err(|reason| JournalError::Corrupt { seq, reason });
                    if rec.is_ok() {
                        self.expect = seq + 1;
                    }
                    return Some(rec);
                }
                self.current = None;
            }
            match self.inner.next() {
                None => {
                    // Ending below the tip means records that were durable are gone.
                    if self.expect <= self.tip {
                        return Some(Err(JournalError::Corrupt {
                            seq: self.expect,
                            reason: format!("missing: the durable tip is {}", self.tip),
                        }));
                    }
                    return None;
                }
                Some(Err(e)) => return Some(Err(JournalError::io("reading")(e))),
                Some(Ok((k, v))) => {
                    let frame = match codec::frame(&k, &v) {
                        Ok(f) => f,
                        Err(reason) => {
                            return Some(Err(JournalError::Corrupt {
                                seq: self.expect,
                                reason,
                            }))
                        }
                    };
                    if frame.first > self.expect {
                        let e = self.expect;
                        return Some(Err(JournalError::Corrupt {
                            seq: e,
                            reason: format!("gap: expected {e}, found {}", frame.first),
                        }));
                    }
                    self.current = Some((v, frame));
                }
            }
        }
    }
}

impl Iterator for Iter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// What one call of [`Journal::write_units`] stores: frames, each its own sled value.
enum Piece {
    /// A frame of whole units.
    One([u8; 8], Vec<u8>),
    /// The frames of one unit too large for a frame, written together.
    Atomic(Vec<([u8; 8], Vec<u8>)>),
}

/// Gives the units' drafts sequence numbers from `first` and packs them into frames:
/// whole units per frame up to the frame limits; a unit larger than a frame alone is
/// split into frames that must be written atomically.
fn pack(first: u64, units: Vec<Vec<Draft>>) -> Result<(Vec<Arc<Record>>, Vec<Piece>)> {
    let mut records = Vec::with_capacity(units.iter().map(Vec::len).sum());
    let mut pieces = Vec::new();
    let mut frame = codec::FrameWriter::new();
    let mut seq = first;
    for unit in units {
        if unit.is_empty() {
            continue;
        }
        let recs: Vec<Record> = unit
            .into_iter()
            .map(|d| {
                let r = Record::from_draft(seq, d);
                seq += 1;
                r
            })
            .collect();
        let mark = frame.mark();
        for r in &recs {
            frame.push(r.seq, r)?;
        }
        if frame.is_over() {
            if mark.count() > 0 {
                // Close the frame before this unit and start the unit in a new one.
                frame.rollback(mark);
                pieces.extend(
                    std::mem::take(&mut frame)
                        .finish()
                        .map(|(k, v)| Piece::One(k, v)),
                );
                for r in &recs {
                    frame.push(r.seq, r)?;
                }
            }
            if frame.is_over() {
                // The unit alone is larger than a frame.
                let mut parts = Vec::new();
                let mut split = codec::FrameWriter::new();
                for r in &recs {
                    split.push(r.seq, r)?;
                    if split.is_full() {
                        parts.extend(std::mem::take(&mut split).finish());
                    }
                }
                parts.extend(split.finish());
                pieces.push(Piece::Atomic(parts));
                frame = codec::FrameWriter::new();
            }
        }
        records.extend(recs.into_iter().map(Arc::new));
    }
    pieces.extend(frame.finish().map(|(k, v)| Piece::One(k, v)));
    Ok((records, pieces))
}

/// Records written by [`Journal::write`], waiting for [`Journal::commit`].
#[must_use = "written records must be committed, or the journal fails"]
pub struct Written {
    journal: Journal,
    records: Vec<Arc<Record>>,
    committed: bool,
}

impl Written {
    /// The records, with their sequence numbers.
    pub fn records(&self) -> &[Arc<Record>] {
        &self.records
    }

    /// The records (taking them from a batch not yet committed fails the journal, as
    /// dropping it does).
    pub fn into_records(mut self) -> Vec<Arc<Record>> {
        self.abandon_check();
        self.committed = true;
        std::mem::take(&mut self.records)
    }

    fn abandon_check(&self) {
        if !self.committed && !self.records.is_empty() {
            tracing::error!(
                first = self.first_seq(),
                last = self.last_seq(),
                "journal: written records dropped without a commit; failing the journal"
            );
            self.journal.fail();
        }
    }

    /// The first sequence number (0 when empty).
    pub fn first_seq(&self) -> u64 {
        self.records.first().map_or(0, |r| r.seq)
    }

    /// The last sequence number (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.records.last().map_or(0, |r| r.seq)
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        self.abandon_check();
    }
}
