//! Unit-level behaviour of the public API: empty batches, checkpoint bounds and pruning,
//! stats, and the directory lock.

mod common;

use berth_journal::{Journal, JournalError};
use common::{append_derived, assert_holds_derived, draft_for, small_opts};

#[test]
fn empty_batch_is_a_noop() {
    let dir = tempfile::tempdir().unwrap();
    let (j, report) = Journal::open(dir.path(), small_opts()).unwrap();
    assert_eq!(report.last_seq, 0);
    assert!(j.append_batch(Vec::new()).unwrap().is_empty());
    assert_eq!(j.last_seq(), 0);
    assert_eq!(j.stats().unwrap().records, 0);
    append_derived(&j, 5, 5);
    assert!(j.append_batch(Vec::new()).unwrap().is_empty());
    assert_eq!(j.last_seq(), 5);
    // The next real append continues right after the tip: the empty batch used no seq.
    let recs = j.append_batch(vec![draft_for(6)]).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].seq, 6);
    assert_holds_derived(&j, 6);
}

#[test]
fn checkpoint_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    // Empty journal: nothing can be checkpointed.
    assert!(matches!(
        j.checkpoint(0, vec![1]),
        Err(JournalError::Invalid(_))
    ));
    assert!(matches!(
        j.checkpoint(1, vec![1]),
        Err(JournalError::Invalid(_))
    ));
    append_derived(&j, 10, 4);
    assert!(matches!(
        j.checkpoint(0, vec![1]),
        Err(JournalError::Invalid(_))
    ));
    assert!(matches!(
        j.checkpoint(11, vec![1]),
        Err(JournalError::Invalid(_))
    ));
    assert!(matches!(
        j.checkpoint(u64::MAX, vec![1]),
        Err(JournalError::Invalid(_))
    ));
    assert_eq!(j.latest_checkpoint().unwrap(), None);
    j.checkpoint(1, b"one".to_vec()).unwrap();
    j.checkpoint(10, b"ten".to_vec()).unwrap();
    let cp = j.latest_checkpoint().unwrap().unwrap();
    assert_eq!((cp.seq, cp.data.as_slice()), (10, &b"ten"[..]));
    assert_eq!(j.stats().unwrap().checkpoints.len(), 2);
}

#[test]
fn only_newest_three_checkpoints_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
        append_derived(&j, 20, 7);
        for seq in [2u64, 5, 9, 12, 17] {
            j.checkpoint(seq, format!("state@{seq}").into_bytes())
                .unwrap();
        }
        let seqs: Vec<u64> = j
            .stats()
            .unwrap()
            .checkpoints
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(seqs, vec![17, 12, 9]);
        // An older checkpoint written late is the oldest of four and goes right away.
        j.checkpoint(3, b"late".to_vec()).unwrap();
        let seqs: Vec<u64> = j
            .stats()
            .unwrap()
            .checkpoints
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(seqs, vec![17, 12, 9]);
        let cp = j.latest_checkpoint().unwrap().unwrap();
        assert_eq!((cp.seq, cp.data), (17, b"state@17".to_vec()));
        let v = j.verify().unwrap();
        assert!(v.ok(), "{v:?}");
        assert_eq!(v.checkpoints_checked, 3);
    }
    // And after reopening.
    let (j, report) = Journal::open(dir.path(), small_opts()).unwrap();
    assert_eq!(report.checkpoint_seq, Some(17));
    assert_eq!(report.verified_tail, 3);
    assert_eq!(report.last_seq, 20);
    let seqs: Vec<u64> = j
        .stats()
        .unwrap()
        .checkpoints
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, vec![17, 12, 9]);
}

#[test]
fn stats_are_right() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    let s = j.stats().unwrap();
    assert_eq!(s.path, dir.path());
    assert_eq!((s.records, s.first_seq, s.last_seq), (0, 0, 0));
    assert!(s.checkpoints.is_empty());
    assert_eq!((s.quarantined, s.cuts, s.subscribers), (0, 0, 0));

    append_derived(&j, 37, 5);
    j.checkpoint(30, vec![7; 123]).unwrap();
    j.checkpoint(37, Vec::new()).unwrap();
    let sub_a = j.subscribe_from(1);
    let mut sub_b = j.subscribe_from(38);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // A subscription registers live only once it reached the tip.
    rt.block_on(async {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), sub_b.next()).await;
    });
    let s = j.stats().unwrap();
    assert_eq!((s.records, s.first_seq, s.last_seq), (37, 1, 37));
    let cps: Vec<(u64, u64)> = s.checkpoints.iter().map(|c| (c.seq, c.bytes)).collect();
    assert_eq!(cps, vec![(37, 0), (30, 123)]);
    assert_eq!((s.quarantined, s.cuts), (0, 0));
    assert_eq!(s.subscribers, 1);
    assert!(s.size_on_disk > 0);
    drop(sub_a);

    let counts = j.topic_counts().unwrap();
    assert_eq!(counts.values().sum::<u64>(), 37);
    for (topic, n) in &counts {
        let expected = (1..=37u64)
            .filter(|s| &draft_for(*s).topic == topic)
            .count() as u64;
        assert_eq!(*n, expected, "{topic}");
    }
    drop(sub_b);
    // A dropped subscriber is removed at the next publish.
    append_derived(&j, 1, 1);
    assert_eq!(j.stats().unwrap().subscribers, 0);
}

#[test]
fn second_open_in_same_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    append_derived(&j, 3, 3);
    match Journal::open(dir.path(), small_opts()) {
        Err(e @ JournalError::Locked { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("in use"), "{msg}");
            assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        }
        Err(e) => panic!("expected Locked, got {e:?}"),
        Ok(_) => panic!("a second open of an open journal succeeded"),
    }
    // The first one is unaffected.
    append_derived(&j, 2, 2);
    assert_eq!(j.last_seq(), 5);
    drop(j);
    // Once dropped, the directory opens again, with everything in it.
    let (j, report) = Journal::open(dir.path(), small_opts()).unwrap();
    assert_eq!(report.last_seq, 5);
    assert_eq!(j.read_from(1, 100).unwrap().len(), 5);
}

#[test]
fn closed_journal_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    append_derived(&j, 4, 2);
    j.close().unwrap();
    assert!(matches!(
        j.append_batch(vec![draft_for(5)]),
        Err(JournalError::Closed)
    ));
    // Reads still work after close.
    assert_eq!(j.read_from(1, 10).unwrap().len(), 4);
    assert_eq!(j.last_seq(), 4);
}

#[test]
fn read_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    assert!(j.read_from(0, 10).unwrap().is_empty());
    assert!(j.read_from(1, 10).unwrap().is_empty());
    append_derived(&j, 10, 3);
    let seqs =
        |v: Vec<std::sync::Arc<berth_journal::Record>>| v.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(j.read_from(0, 3).unwrap()), vec![1, 2, 3]);
    assert_eq!(seqs(j.read_from(8, 100).unwrap()), vec![8, 9, 10]);
    assert!(j.read_from(11, 100).unwrap().is_empty());
    assert!(j.read_from(u64::MAX, 100).unwrap().is_empty());
    assert!(j.read_from(5, 0).unwrap().is_empty());
}

#[test]
fn panic_before_publish_fails_the_journal_instead_of_reusing_seqs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
        append_derived(&j, 3, 3);
        let j2 = j.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            j2.append_batch_then(vec![draft_for(4), draft_for(5)], |recs| {
                assert_eq!(recs[0].seq, 4);
                panic!("state apply failed");
            })
        }));
        assert!(r.is_err());
        // The batch is durable but was never published; a further append must not
        // take seq 4 again (that would overwrite a durable record).
        let r = j.append_batch(vec![draft_for(4)]);
        assert!(matches!(r, Err(JournalError::Failed)), "{r:?}");
    }
    // A restart replays what is durable: the batch is there, unchanged.
    let (j, report) = Journal::open(dir.path(), small_opts()).unwrap();
    assert_eq!(report.last_seq, 5);
    assert_holds_derived(&j, 5);
}

#[test]
fn append_batch_then_runs_before_subscribers_see_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    let mut sub = j.subscribe_from(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // Register the subscriber live.
    rt.block_on(async {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), sub.next()).await;
    });
    let seen = std::sync::Mutex::new(Vec::new());
    let recs = j
        .append_batch_then(vec![draft_for(1), draft_for(2)], |recs| {
            // Durable, not yet visible to readers of the tip.
            assert_eq!(j.last_seq(), 0);
            seen.lock().unwrap().extend(recs.iter().map(|r| r.seq));
        })
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![1, 2]);
    assert_eq!(recs.len(), 2);
    assert_eq!(j.last_seq(), 2);
    let stats = j.stats().unwrap();
    assert_eq!(
        (stats.batches_since_open, stats.appended_since_open),
        (1, 2)
    );
    rt.block_on(async {
        for want in 1..=2u64 {
            match sub.next().await {
                Some(Ok(berth_journal::SubEvent::Record(r))) => assert_eq!(r.seq, want),
                other => panic!("{other:?}"),
            }
        }
    });
}

#[test]
fn unencodable_draft_fails_the_batch_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    append_derived(&j, 2, 2);
    // Nanosecond timestamps end in 2262.
    let mut bad = draft_for(4);
    bad.at = chrono::DateTime::parse_from_rfc3339("2300-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let r = j.append_batch(vec![draft_for(3), bad]);
    assert!(matches!(r, Err(JournalError::Encode(_))), "{r:?}");
    // Nothing of the batch was written, and the journal is not failed.
    assert_eq!(j.last_seq(), 2);
    assert_eq!(j.stats().unwrap().records, 2);
    assert_eq!(j.append_batch(vec![draft_for(3)]).unwrap()[0].seq, 3);
    assert_holds_derived(&j, 3);
}

#[test]
fn reopen_right_after_drop_in_the_same_process() {
    // sled lets go of its directory lock a moment after the last handle is dropped;
    // open must not report that moment as `Locked`.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..60u64 {
        let (j, report) = Journal::open(dir.path(), small_opts())
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert_eq!(report.last_seq, round * 2);
        append_derived(&j, 2, 2);
        if round % 4 == 1 {
            j.checkpoint(j.last_seq(), vec![1]).unwrap();
        }
        drop(j);
    }
}

#[test]
fn written_records_are_invisible_until_committed_and_one_commit_makes_several_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
        append_derived(&j, 2, 2);
        let a = j.write(vec![draft_for(3), draft_for(4)]).unwrap();
        let b = j.write(vec![draft_for(5)]).unwrap();
        assert_eq!((a.first_seq(), a.last_seq(), b.first_seq()), (3, 4, 5));
        // Written, not committed: readers and the tip stop before them.
        assert_eq!(j.last_seq(), 2);
        assert_eq!(j.read_from(1, 100).unwrap().len(), 2);
        assert_eq!(j.iter_from(3).count(), 0);
        let before = j.stats().unwrap().batches_since_open;
        let mut batches = [a, b];
        let mut seen = Vec::new();
        j.commit(&mut batches, |bs| {
            assert_eq!(j.last_seq(), 2, "not published before the callback");
            seen.extend(bs.iter().flat_map(|b| b.records().iter().map(|r| r.seq)));
        })
        .unwrap();
        assert_eq!(seen, vec![3, 4, 5]);
        assert_eq!(j.last_seq(), 5);
        let stats = j.stats().unwrap();
        assert_eq!(stats.batches_since_open - before, 1, "one flush for both");
        let [a, b] = batches;
        assert_eq!(a.into_records().len() + b.into_records().len(), 3);
        // The next append follows them.
        assert_eq!(j.append_batch(vec![draft_for(6)]).unwrap()[0].seq, 6);
    }
    let (j, report) = Journal::open(dir.path(), small_opts()).unwrap();
    assert_eq!(report.last_seq, 6);
    assert_holds_derived(&j, 6);
}

#[test]
fn a_commit_waits_for_the_batches_written_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    let a = j.write(vec![draft_for(1)]).unwrap();
    let b = j.write(vec![draft_for(2), draft_for(3)]).unwrap();
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // b's committer starts first: it must wait until a is published.
    let later = {
        let (j, order) = (j.clone(), order.clone());
        std::thread::spawn(move || {
            let mut b = [b];
            j.commit(&mut b, |bs| {
                order.lock().unwrap().push(bs[0].first_seq());
                assert_eq!(j.last_seq(), 1, "a is published before b's callback");
            })
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(!later.is_finished(), "b committed before a");
    assert_eq!(j.last_seq(), 0);
    let mut a = [a];
    j.commit(&mut a, |bs| order.lock().unwrap().push(bs[0].first_seq()))
        .unwrap();
    later.join().unwrap().unwrap();
    assert_eq!(*order.lock().unwrap(), vec![1, 2]);
    assert_eq!(j.last_seq(), 3);
}

#[test]
fn written_batches_out_of_order_or_dropped_fail_the_journal() {
    // Out of order in one commit.
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    let a = j.write(vec![draft_for(1)]).unwrap();
    let b = j.write(vec![draft_for(2)]).unwrap();
    let mut wrong = [b, a];
    let r = j.commit(&mut wrong, |_| panic!("never applied"));
    assert!(matches!(r, Err(JournalError::Invalid(_))), "{r:?}");
    assert!(matches!(
        j.append_batch(vec![draft_for(3)]),
        Err(JournalError::Failed)
    ));
    assert_eq!(j.last_seq(), 0);
    drop(wrong);

    // Dropped without a commit: its records could reach the disk unpublished, so
    // nothing more may be written; a waiting commit is woken with the failure.
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    append_derived(&j, 1, 1);
    let lost = j.write(vec![draft_for(2)]).unwrap();
    let next = j.write(vec![draft_for(3)]).unwrap();
    let waiter = {
        let j = j.clone();
        std::thread::spawn(move || {
            let mut next = [next];
            j.commit(&mut next, |_| panic!("never applied"))
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(30));
    drop(lost);
    let r = waiter.join().unwrap();
    assert!(matches!(r, Err(JournalError::Failed)), "{r:?}");
    assert!(matches!(
        j.write(vec![draft_for(4)]),
        Err(JournalError::Failed)
    ));
    assert_eq!(j.last_seq(), 1);
}

#[test]
fn concurrent_append_batches_stay_contiguous_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    let applied = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (j, applied) = (j.clone(), applied.clone());
            std::thread::spawn(move || {
                for _ in 0..25 {
                    j.append_batch_then(vec![draft_for(1), draft_for(2)], |recs| {
                        applied.lock().unwrap().extend(recs.iter().map(|r| r.seq));
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(*applied.lock().unwrap(), (1..=400).collect::<Vec<u64>>());
    assert_eq!(j.last_seq(), 400);
    assert_eq!(j.iter_from(1).count(), 400);
}
