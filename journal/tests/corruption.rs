//! Damage to the files on disk: sled's own files (random byte flips, truncation) and our
//! records (a flipped byte in a stored value, a missing key), each on a fresh copy of a
//! pristine journal. Opening must never panic, and what is returned as good data must be
//! exactly the original records, in order, from 1.

mod common;

use std::path::{Path, PathBuf};

use berth_journal::{Journal, JournalError, Record};
use common::{append_derived, check_derived, draft_for, small_opts, Rng};

const RECORDS: u64 = 2000;

/// Writes the pristine journal: `RECORDS` derived records in batches, with checkpoints.
fn pristine(dir: &Path) {
    let (j, _) = Journal::open(dir, small_opts()).unwrap();
    let mut next_cp = 300;
    while j.last_seq() < RECORDS {
        append_derived(&j, 50.min(RECORDS - j.last_seq()), 50);
        if j.last_seq() >= next_cp {
            j.checkpoint(next_cp, checkpoint_data(next_cp)).unwrap();
            next_cp += 300;
        }
    }
    j.close().unwrap();
}

fn checkpoint_data(seq: u64) -> Vec<u8> {
    format!("checkpoint {seq}").into_bytes()
}

/// Every regular file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for rel in files(from) {
        let dst = to.join(&rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&rel), dst).unwrap();
    }
}

/// How one damaged copy turned out.
#[derive(Debug, Default)]
struct Outcome {
    open_error: Option<String>,
    /// Records returned as good by `iter_from(1)`.
    good: u64,
    /// The iteration ended with this error.
    iter_error: Option<String>,
}

/// Opens a damaged copy and checks everything it returns. Panics (the test fails) if
/// anything panics or a wrong record is returned.
fn open_and_check(dir: &Path, what: &str) -> Outcome {
    let opened = std::panic::catch_unwind(|| Journal::open(dir, small_opts()));
    let opened = match opened {
        Ok(r) => r,
        Err(_) => panic!("{what}: Journal::open panicked"),
    };
    let (j, report) = match opened {
        Ok(ok) => ok,
        Err(e) => {
            let msg = e.to_string();
            assert!(
                matches!(
                    e,
                    JournalError::Open { .. }
                        | JournalError::Corrupt { .. }
                        | JournalError::Io { .. }
                ),
                "{what}: unexpected error kind {e:?}"
            );
            assert!(msg.len() > 20, "{what}: unclear error message {msg:?}");
            return Outcome {
                open_error: Some(msg),
                ..Outcome::default()
            };
        }
    };
    let mut out = Outcome::default();
    let last = j.last_seq();
    assert_eq!(report.last_seq, last, "{what}");
    assert!(
        last <= RECORDS,
        "{what}: last_seq {last} beyond what was written"
    );
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut expect = 1u64;
        for r in j.iter_from(1) {
            match r {
                Ok(r) => {
                    assert_eq!(r.seq, expect, "{what}: out of order / not a prefix");
                    check_derived(&r);
                    expect += 1;
                }
                Err(e) => {
                    assert!(
                        matches!(e, JournalError::Corrupt { .. } | JournalError::Io { .. }),
                        "{what}: iteration error {e:?}"
                    );
                    out.iter_error = Some(e.to_string());
                }
            }
        }
        out.good = expect - 1;
        if out.iter_error.is_none() {
            assert_eq!(out.good, last, "{what}: iteration ended before last_seq");
        }
        if let Ok(Some(cp)) = j.latest_checkpoint() {
            assert!(cp.seq <= last, "{what}: checkpoint beyond the tip");
            assert_eq!(cp.data, checkpoint_data(cp.seq), "{what}: checkpoint data");
        }
        let _ = j.verify();
        let _ = j.stats();
    }));
    if let Err(p) = checked {
        std::panic::resume_unwind(p);
    }
    out
}

/// Which files a trial damages: sled's `conf` is small and checksummed, so damage there
/// mostly makes sled refuse to open; the interesting damage is in `db` (and any other
/// file sled keeps: blobs, snapshots). So: mostly the data files alone, sometimes
/// everything, sometimes only `conf`.
fn targets(dir: &Path, rng: &mut Rng) -> Vec<PathBuf> {
    let all = files(dir);
    let data: Vec<PathBuf> = all
        .iter()
        .filter(|f| f.as_os_str() != "conf")
        .cloned()
        .collect();
    match rng.range(0, 8) {
        0 => all,
        1 => vec![PathBuf::from("conf")],
        2 if data.len() > 1 => vec![data[rng.range_usize(0, data.len())].clone()],
        _ => data,
    }
}

fn flip_bytes(dir: &Path, rng: &mut Rng) -> String {
    let mut desc = Vec::new();
    for rel in targets(dir, rng) {
        let path = dir.join(&rel);
        let mut bytes = std::fs::read(&path).unwrap();
        if bytes.is_empty() {
            continue;
        }
        // From a single flip to heavy damage.
        let flips = 1usize << rng.range(0, 9);
        for _ in 0..flips {
            let at = rng.range_usize(0, bytes.len());
            let mask = u8::try_from(rng.range(1, 256)).unwrap();
            bytes[at] ^= mask;
        }
        std::fs::write(&path, bytes).unwrap();
        desc.push(format!("{}: {flips} flips", rel.display()));
    }
    desc.join(", ")
}

fn truncate_files(dir: &Path, rng: &mut Rng) -> String {
    let mut desc = Vec::new();
    for rel in targets(dir, rng) {
        let path = dir.join(&rel);
        let len = std::fs::metadata(&path).unwrap().len();
        // Often a torn end, sometimes anywhere.
        let to = if rng.chance(2) {
            rng.range(len.saturating_sub(8192), len + 1)
        } else {
            rng.range(0, len + 1)
        };
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(to)
            .unwrap();
        desc.push(format!("{}: {len} -> {to}", rel.display()));
    }
    desc.join(", ")
}

/// Damage that a byte flip rarely makes: whole ranges zeroed (a lost write on some
/// filesystems) or copied from elsewhere in the file (a misdirected write).
fn zero_or_copy_ranges(dir: &Path, rng: &mut Rng) -> String {
    let mut desc = Vec::new();
    for rel in targets(dir, rng) {
        let path = dir.join(&rel);
        let mut bytes = std::fs::read(&path).unwrap();
        if bytes.len() < 2 {
            continue;
        }
        for _ in 0..rng.range(1, 4) {
            let len = rng.range_usize(1, (bytes.len() / 4).clamp(2, 8192));
            let at = rng.range_usize(0, bytes.len() - len + 1);
            if rng.chance(2) {
                bytes[at..at + len].fill(0);
                desc.push(format!("{}: zeroed {at}+{len}", rel.display()));
            } else {
                let src = rng.range_usize(0, bytes.len() - len + 1);
                bytes.copy_within(src..src + len, at);
                desc.push(format!("{}: copied {src}+{len} to {at}", rel.display()));
            }
        }
        std::fs::write(&path, bytes).unwrap();
    }
    desc.join(", ")
}

/// Runs `n` trials (or `BERTH_CORRUPTION_TRIALS`, for longer hunts).
fn trials(name: &str, n: usize, damage: fn(&Path, &mut Rng) -> String) {
    let n = std::env::var("BERTH_CORRUPTION_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    let seed = common::seed(name);
    let mut rng = Rng::new(seed);
    let base = tempfile::tempdir().unwrap();
    let clean = base.path().join("clean");
    pristine(&clean);
    let mut outcomes = (0, 0, 0);
    for trial in 0..n {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&clean, copy.path());
        let desc = damage(copy.path(), &mut rng);
        let what = format!("{name} trial {trial} (seed {seed}; {desc})");
        let out = open_and_check(copy.path(), &what);
        match (&out.open_error, &out.iter_error) {
            (Some(_), _) => outcomes.0 += 1,
            (None, Some(_)) => outcomes.1 += 1,
            (None, None) => outcomes.2 += 1,
        }
        eprintln!("{what}: {out:?}");
    }
    eprintln!(
        "{name}: {n} trials: open refused {}, read ended in an error {}, clean prefix {}",
        outcomes.0, outcomes.1, outcomes.2
    );
}

#[test]
fn flipped_bytes_in_sled_files() {
    trials("flipped_bytes_in_sled_files", 80, flip_bytes);
}

#[test]
fn zeroed_or_copied_ranges_in_sled_files() {
    trials(
        "zeroed_or_copied_ranges_in_sled_files",
        40,
        zero_or_copy_ranges,
    );
}

#[test]
fn truncated_sled_files() {
    trials("truncated_sled_files", 60, truncate_files);
}

// ---- Our own checks: damage written through sled itself, below the journal. ----

/// A journal of `n` derived records with checkpoints at `cps`, closed. One record per
/// append, so each record is a frame of its own under its own key and the tests below
/// can damage one record through sled (frames of many records: `frames` below).
fn small_journal(dir: &Path, n: u64, cps: &[u64]) {
    journal_of_appends(dir, &vec![1; usize::try_from(n).unwrap()], cps);
}

/// A journal of derived records written by appends of the sizes in `appends` (the
/// records of one append share frames), with checkpoints at `cps`, closed.
fn journal_of_appends(dir: &Path, appends: &[u64], cps: &[u64]) {
    let (j, _) = Journal::open(dir, small_opts()).unwrap();
    for &n in appends {
        append_derived(&j, n, n);
    }
    for &cp in cps {
        j.checkpoint(cp, checkpoint_data(cp)).unwrap();
    }
    j.close().unwrap();
}

/// Edits the journal's sled database directly (the journal must not be open).
fn with_sled(dir: &Path, edit: impl FnOnce(&sled::Db)) {
    // sled releases its directory lock when its last internal handle drops, which can
    // be a moment after the journal is dropped: retry briefly.
    let mut tries = 0;
    let db = loop {
        match sled::Config::new().path(dir).open() {
            Ok(db) => break db,
            Err(e) if tries < 400 && e.to_string().contains("lock") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("sled open: {e}"),
        }
    };
    edit(&db);
    db.flush().unwrap();
}

/// The keys of the events tree, as seqs.
fn event_keys(db: &sled::Db) -> Vec<u64> {
    events(db)
        .iter()
        .keys()
        .map(|k| u64::from_be_bytes(k.unwrap().as_ref().try_into().unwrap()))
        .collect()
}

fn events(db: &sled::Db) -> sled::Tree {
    db.open_tree("events").unwrap()
}

fn flip_stored_byte(db: &sled::Db, tree: &str, seq: u64) {
    let tree = db.open_tree(tree).unwrap();
    let mut v = tree
        .get(seq.to_be_bytes())
        .unwrap()
        .expect("present")
        .to_vec();
    let at = v.len() - 3;
    v[at] ^= 0x10;
    tree.insert(seq.to_be_bytes(), v).unwrap();
}

fn reopen(dir: &Path) -> (Journal, berth_journal::OpenReport) {
    std::panic::catch_unwind(|| Journal::open(dir, small_opts()))
        .expect("open panicked")
        .expect("open")
}

/// Collects `iter_from(from)`: the good records and the error it ended with, if any.
fn collect(j: &Journal, from: u64) -> (Vec<Record>, Option<JournalError>) {
    let mut good = Vec::new();
    let mut it = j.iter_from(from);
    for r in &mut it {
        match r {
            Ok(r) => good.push(r),
            Err(e) => {
                assert!(it.next().is_none(), "iteration continued after an error");
                return (good, Some(e));
            }
        }
    }
    (good, None)
}

fn assert_exactly(records: &[Record], seqs: std::ops::RangeInclusive<u64>) {
    let got: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(got, seqs.collect::<Vec<_>>());
    records.iter().for_each(check_derived);
}

/// After a cut at `at` that moves `quarantined` records: the cut is reported, the
/// journal holds exactly 1..at, and appends continue at `at`.
fn check_cut(dir: &Path, at: u64, quarantined: u64, reason_has: &str) {
    let (j, report) = reopen(dir);
    let cut = report.cut.clone().expect("a cut");
    assert_eq!(cut.at_seq, at, "{report:?}");
    assert_eq!(cut.quarantined, quarantined, "{report:?}");
    assert!(cut.reason.contains(reason_has), "{cut:?}");
    assert_eq!(report.last_seq, at - 1);
    assert_eq!(j.last_seq(), at - 1);
    let (good, err) = collect(&j, 1);
    assert!(err.is_none(), "{err:?}");
    assert_exactly(&good, 1..=at - 1);
    let stats = j.stats().unwrap();
    assert_eq!(stats.cuts, 1);
    assert_eq!(stats.quarantined, cut.quarantined);
    assert_eq!(stats.records, at - 1);
    let cuts = j.cuts().unwrap();
    assert_eq!(cuts.len(), 1);
    assert!(cuts[0].contains(&format!("at_seq={at}")), "{cuts:?}");
    assert!(j.verify().unwrap().ok());
    let recs = j.append_batch(vec![draft_for(at)]).unwrap();
    assert_eq!(recs[0].seq, at);
    drop(j);
    // Reopening again finds nothing more to cut.
    let (j, report) = reopen(dir);
    assert_eq!(report.cut, None);
    assert_eq!(report.last_seq, at);
    let (good, err) = collect(&j, 1);
    assert!(err.is_none());
    assert_exactly(&good, 1..=at);
}

#[test]
fn flipped_byte_in_tail_record_cuts_there() {
    let dir = tempfile::tempdir().unwrap();
    small_journal(dir.path(), 100, &[20]);
    with_sled(dir.path(), |db| flip_stored_byte(db, "events", 60));
    check_cut(dir.path(), 60, 41, "checksum");
    let (j, _) = reopen(dir.path());
    assert_eq!(j.stats().unwrap().quarantined, 41);
}

#[test]
fn missing_tail_record_cuts_there() {
    let dir = tempfile::tempdir().unwrap();
    small_journal(dir.path(), 100, &[20]);
    with_sled(dir.path(), |db| {
        events(db).remove(60u64.to_be_bytes()).unwrap().unwrap();
    });
    check_cut(dir.path(), 60, 40, "gap");
    let (j, _) = reopen(dir.path());
    assert_eq!(j.stats().unwrap().quarantined, 40);
}

#[test]
fn record_under_the_wrong_key_cuts_there() {
    let dir = tempfile::tempdir().unwrap();
    small_journal(dir.path(), 50, &[]);
    with_sled(dir.path(), |db| {
        let t = events(db);
        let v = t.get(31u64.to_be_bytes()).unwrap().unwrap();
        t.insert(30u64.to_be_bytes(), v).unwrap();
    });
    check_cut(dir.path(), 30, 21, "checksum");
}

#[test]
fn missing_first_record_without_checkpoint_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    small_journal(dir.path(), 40, &[]);
    with_sled(dir.path(), |db| {
        events(db).remove(1u64.to_be_bytes()).unwrap().unwrap();
    });
    check_cut(dir.path(), 1, 39, "gap");
}

#[test]
fn missing_tail_record_after_a_cut_at_the_end() {
    // The very last record bad: only it is quarantined.
    let dir = tempfile::tempdir().unwrap();
    small_journal(dir.path(), 30, &[10]);
    with_sled(dir.path(), |db| flip_stored_byte(db, "events", 30));
    check_cut(dir.path(), 30, 1, "checksum");
}

#[test]
fn corrupt_record_before_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    small_journal(dir.path(), 100, &[80]);
    with_sled(dir.path(), |db| {
        flip_stored_byte(db, "events", 30);
        events(db).remove(50u64.to_be_bytes()).unwrap().unwrap();
    });
    // Recovery replays from the checkpoint: the tail is fine, so open succeeds.
    let (j, report) = reopen(dir.path());
    assert_eq!(report.cut, None);
    assert_eq!(report.checkpoint_seq, Some(80));
    assert_eq!(report.verified_tail, 20);
    assert_eq!(report.last_seq, 100);
    // verify finds both problems.
    let v = j.verify().unwrap();
    assert!(!v.ok());
    let problems: Vec<u64> = v.problems.iter().map(|p| p.seq).collect();
    assert_eq!(problems, vec![30, 50], "{v:?}");
    assert!(v.problems[0].reason.contains("checksum"), "{v:?}");
    assert!(v.problems[1].reason.contains("gap"), "{v:?}");
    assert_eq!(v.checked, 99);
    // Reading through it ends with Corrupt at the bad record.
    let (good, err) = collect(&j, 1);
    assert_exactly(&good, 1..=29);
    assert!(
        matches!(err, Some(JournalError::Corrupt { seq: 30, .. })),
        "{err:?}"
    );
    assert!(matches!(
        j.read_from(1, 1000),
        Err(JournalError::Corrupt { seq: 30, .. })
    ));
    // Reading from just after it runs into the gap.
    let (good, err) = collect(&j, 31);
    assert_exactly(&good, 31..=49);
    assert!(
        matches!(err, Some(JournalError::Corrupt { seq: 50, .. })),
        "{err:?}"
    );
    // Reading from the missing record itself must not skip it.
    let (good, err) = collect(&j, 50);
    assert!(
        good.is_empty(),
        "read from a missing record returned {:?}",
        good.first().map(|r| r.seq)
    );
    assert!(
        matches!(err, Some(JournalError::Corrupt { seq: 50, .. })),
        "{err:?}"
    );
    let (good, err) = collect(&j, 51);
    assert!(err.is_none());
    assert_exactly(&good, 51..=100);
    // A subscription through it yields the good records, then the error, then ends.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut sub = j.subscribe_from(1);
        for want in 1..=29 {
            match sub.next().await {
                Some(Ok(berth_journal::SubEvent::Record(r))) => assert_eq!(r.seq, want),
                other => panic!("expected {want}, got {other:?}"),
            }
        }
        assert!(matches!(
            sub.next().await,
            Some(Err(JournalError::Corrupt { seq: 30, .. }))
        ));
        assert!(sub.next().await.is_none());
        // Subscribing at the gap does not skip it either.
        let mut sub = j.subscribe_from(50);
        assert!(matches!(
            sub.next().await,
            Some(Err(JournalError::Corrupt { seq: 50, .. }))
        ));
    });
    // The good tail and appends still work.
    assert_eq!(j.append_batch(vec![draft_for(101)]).unwrap()[0].seq, 101);
    assert_eq!(j.latest_checkpoint().unwrap().unwrap().seq, 80);
}

#[test]
fn corrupt_newest_checkpoint_falls_back_to_the_previous() {
    let dir = tempfile::tempdir().unwrap();
    small_journal(dir.path(), 100, &[40, 70, 90]);
    with_sled(dir.path(), |db| flip_stored_byte(db, "checkpoints", 90));
    let (j, report) = reopen(dir.path());
    assert_eq!(report.bad_checkpoints, vec![90]);
    assert_eq!(report.checkpoint_seq, Some(70));
    assert_eq!(report.verified_tail, 30);
    assert_eq!(report.cut, None);
    let cp = j.latest_checkpoint().unwrap().unwrap();
    assert_eq!((cp.seq, cp.data), (70, checkpoint_data(70)));
    // The bad one was removed.
    let seqs: Vec<u64> = j
        .stats()
        .unwrap()
        .checkpoints
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, vec![70, 40]);
    assert!(j.verify().unwrap().ok());
}

#[test]
fn checkpoint_beyond_the_records_is_refused() {
    // Records the checkpoint covers are gone: that is not a torn tail, open refuses.
    let dir = tempfile::tempdir().unwrap();
    small_journal(dir.path(), 100, &[80]);
    with_sled(dir.path(), |db| {
        let t = events(db);
        for seq in 51..=100u64 {
            t.remove(seq.to_be_bytes()).unwrap().unwrap();
        }
    });
    match std::panic::catch_unwind(|| Journal::open(dir.path(), small_opts())).expect("no panic") {
        Err(JournalError::Corrupt { seq: 80, reason }) => {
            assert!(reason.contains("beyond"), "{reason}")
        }
        Err(e) => panic!("unexpected error {e:?}"),
        Ok((j, report)) => panic!("opened with last_seq {} ({report:?})", j.last_seq()),
    }
    // Also with no records at all.
    with_sled(dir.path(), |db| {
        events(db).clear().unwrap();
    });
    assert!(matches!(
        Journal::open(dir.path(), small_opts()),
        Err(JournalError::Corrupt { seq: 80, .. })
    ));
}

#[test]
fn without_repair_a_bad_record_is_reported_not_moved_and_appends_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    small_journal(dir.path(), 100, &[20, 90]);
    with_sled(dir.path(), |db| {
        flip_stored_byte(db, "events", 95);
        flip_stored_byte(db, "checkpoints", 90);
    });
    let inspect = berth_journal::OpenOptions {
        repair: false,
        ..small_opts()
    };
    {
        let (j, report) = Journal::open(dir.path(), inspect.clone()).unwrap();
        let cut = report.cut.clone().expect("the bad record is reported");
        assert_eq!((cut.at_seq, cut.quarantined), (95, 0));
        assert_eq!(report.bad_checkpoints, vec![90]);
        assert_eq!(report.checkpoint_seq, Some(20));
        assert_eq!(j.last_seq(), 94);
        // Reads stop before the bad record.
        let (good, err) = collect(&j, 1);
        assert!(err.is_none(), "{err:?}");
        assert_exactly(&good, 1..=94);
        let stats = j.stats().unwrap();
        assert_eq!((stats.quarantined, stats.cuts), (0, 0));
        // Appending would overwrite 95 and keep 96..=100 from the old history.
        let r = j.append_batch(vec![draft_for(95)]);
        assert!(matches!(r, Err(JournalError::Invalid(_))), "{r:?}");
    }
    // Nothing was moved or removed: a repairing open finds the same and cuts.
    let (j, report) = Journal::open(dir.path(), small_opts()).unwrap();
    let cut = report.cut.expect("cut");
    assert_eq!((cut.at_seq, cut.quarantined), (95, 6));
    assert_eq!(report.bad_checkpoints, vec![90]);
    assert_eq!(j.last_seq(), 94);
    assert_eq!(j.append_batch(vec![draft_for(95)]).unwrap()[0].seq, 95);
    let (good, err) = collect(&j, 1);
    assert!(err.is_none());
    assert_exactly(&good, 1..=95);
}

#[test]
fn missing_first_record_before_a_checkpoint_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    small_journal(dir.path(), 60, &[50]);
    with_sled(dir.path(), |db| {
        events(db).remove(1u64.to_be_bytes()).unwrap().unwrap();
    });
    // Recovery replays after the checkpoint, so open succeeds...
    let (j, report) = reopen(dir.path());
    assert_eq!((report.last_seq, report.cut.clone()), (60, None));
    // ...but verify and reads do not pretend the journal starts at 2.
    let v = j.verify().unwrap();
    assert_eq!(v.problems.len(), 1, "{v:?}");
    assert_eq!(v.problems[0].seq, 1);
    assert!(v.problems[0].reason.contains("gap"), "{v:?}");
    let (good, err) = collect(&j, 1);
    assert!(good.is_empty());
    assert!(
        matches!(err, Some(JournalError::Corrupt { seq: 1, .. })),
        "{err:?}"
    );
    let (good, err) = collect(&j, 2);
    assert!(err.is_none());
    assert_exactly(&good, 2..=60);
}

// ---- Frames of many records (what group commit writes) and the format-1 layout. ----

/// The stored value (key and bytes) of the frame that holds `seq`.
fn frame_holding(db: &sled::Db, seq: u64) -> (sled::IVec, Vec<u8>) {
    let (k, v) = events(db)
        .range(seq.to_be_bytes()..)
        .next()
        .expect("a frame")
        .unwrap();
    (k, v.to_vec())
}

/// Byte offset of the body of record `seq` in the frame stored under `last`.
fn entry_offset(v: &[u8], last: u64, seq: u64) -> usize {
    assert_eq!(v[0], berth_journal::codec::FORMAT_FRAME);
    let count = u64::from(u32::from_be_bytes(v[1..5].try_into().unwrap()));
    let mut pos = 5;
    for s in last + 1 - count..seq {
        let _ = s;
        let len = u32::from_be_bytes(v[pos..pos + 4].try_into().unwrap());
        pos += 8 + usize::try_from(len).unwrap();
    }
    pos + 8
}

#[test]
fn frames_hold_the_records_of_one_append() {
    let dir = tempfile::tempdir().unwrap();
    // 300 records in one append: frames of at most FRAME_MAX_RECORDS.
    journal_of_appends(dir.path(), &[300, 5], &[]);
    with_sled(dir.path(), |db| {
        let keys = event_keys(db);
        assert_eq!(keys, vec![128, 256, 300, 305]);
    });
    let (j, report) = reopen(dir.path());
    assert_eq!((report.last_seq, report.cut), (305, None));
    for from in [1, 2, 127, 128, 129, 200, 300, 301, 305] {
        let (good, err) = collect(&j, from);
        assert!(err.is_none(), "{err:?}");
        assert_exactly(&good, from..=305);
    }
    let v = j.verify().unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!((v.checked, v.first_seq, v.last_seq), (305, 1, 305));
    let stats = j.stats().unwrap();
    assert_eq!(
        (stats.records, stats.first_seq, stats.last_seq),
        (305, 1, 305)
    );
}

#[test]
fn damage_inside_a_frame_cuts_at_the_bad_record_and_keeps_the_ones_before() {
    let dir = tempfile::tempdir().unwrap();
    // 1..=40 in one frame, 41..=50 in another.
    journal_of_appends(dir.path(), &[40, 10], &[10]);
    with_sled(dir.path(), |db| {
        let (k, mut v) = frame_holding(db, 25);
        let at = entry_offset(&v, 40, 25) + 2;
        v[at] ^= 0x10;
        events(db).insert(k, v).unwrap();
    });
    // Reads from before the damage stop at it; verify names it.
    {
        let (j, report) = Journal::open(
            dir.path(),
            berth_journal::OpenOptions {
                repair: false,
                ..small_opts()
            },
        )
        .unwrap();
        assert_eq!(report.cut.as_ref().map(|c| c.at_seq), Some(25));
        let v = j.verify().unwrap();
        assert_eq!(v.problems.len(), 1, "{v:?}");
        assert_eq!(v.problems[0].seq, 25);
        assert!(v.problems[0].reason.contains("checksum"), "{v:?}");
    }
    // 25..=40 and 41..=50 go to quarantine; 1..=24 stay, as a frame of their own.
    check_cut(dir.path(), 25, 26, "checksum");
    with_sled(dir.path(), |db| {
        let keys = event_keys(db);
        assert_eq!(keys, vec![24, 25]);
    });
}

#[test]
fn a_frame_whose_records_cannot_be_located_is_cut_at_its_start() {
    let dir = tempfile::tempdir().unwrap();
    journal_of_appends(dir.path(), &[20, 20], &[]); // 1..=20, 21..=40
    with_sled(dir.path(), |db| {
        // A record length far beyond the value: nothing after it can be found.
        let (k, mut v) = frame_holding(db, 21);
        v[5] = 0x7f;
        events(db).insert(k, v).unwrap();
    });
    check_cut(dir.path(), 21, 1, "past the end");
    // A count that does not match the key is caught too (the checksums cover each
    // record's own seq).
    let dir = tempfile::tempdir().unwrap();
    journal_of_appends(dir.path(), &[20, 20], &[]);
    with_sled(dir.path(), |db| {
        let (k, mut v) = frame_holding(db, 21);
        v[4] = 25; // claims 25 records: 16..=40
        events(db).insert(k, v).unwrap();
    });
    // (Its records cannot all be located either, so it is quarantined whole.)
    check_cut(dir.path(), 21, 1, "checksum");
}

#[test]
fn journals_of_format_1_still_open_and_grow_in_frames() {
    // A journal as earlier versions wrote it: one format-1 value per record, plus a
    // format-1 checkpoint.
    let dir = tempfile::tempdir().unwrap();
    with_sled(dir.path(), |db| {
        let t = events(db);
        for seq in 1..=60u64 {
            let d = draft_for(seq);
            let rec = Record {
                seq,
                at: d.at,
                namespace: d.namespace,
                stream: d.stream,
                topic: d.topic,
                schema: d.schema,
                payload: d.payload,
                rendered: Default::default(),
            };
            let k = berth_journal::codec::key(seq);
            t.insert(k, berth_journal::codec::encode(&k, &rec).unwrap())
                .unwrap();
        }
    });
    let (j, report) = reopen(dir.path());
    assert_eq!(
        (report.last_seq, report.verified_tail, report.cut),
        (60, 60, None)
    );
    j.checkpoint(30, checkpoint_data(30)).unwrap();
    append_derived(&j, 40, 20); // 61..=100 in frames
    let (good, err) = collect(&j, 1);
    assert!(err.is_none(), "{err:?}");
    assert_exactly(&good, 1..=100);
    let (good, _) = collect(&j, 55);
    assert_exactly(&good, 55..=100);
    assert!(j.verify().unwrap().ok());
    assert_eq!(j.stats().unwrap().records, 100);
    drop(j);
    // Damage in the old part is still cut there.
    with_sled(dir.path(), |db| flip_stored_byte(db, "events", 45));
    // 45..=60 (format 1) and 61..=100 (one-record values in quarantine).
    check_cut(dir.path(), 45, 16 + 40, "checksum");
}
