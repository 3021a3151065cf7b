//! Subscriptions: catch-up from disk then live with no gap and no duplicate, resume
//! from any seq, lagging subscribers dropped without slowing writers, close.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_journal::{Journal, OpenOptions, SubEvent, Subscription};
use common::{check_derived, draft_for, small_opts, Rng};

/// A bound on any single wait, so a bug shows as a failure rather than a hang.
const WAIT: Duration = Duration::from_secs(20);

async fn next(sub: &mut Subscription) -> Option<SubEvent> {
    match tokio::time::timeout(WAIT, sub.next()).await {
        Ok(Some(Ok(ev))) => Some(ev),
        Ok(Some(Err(e))) => panic!("subscription error: {e}"),
        Ok(None) => None,
        Err(_) => panic!("subscription stalled at {}", sub.next_seq()),
    }
}

/// Polls once so the subscription reaches the live phase (it registers when it finds
/// nothing more on disk), without consuming anything.
async fn go_live(sub: &mut Subscription) {
    let r = tokio::time::timeout(Duration::from_millis(30), sub.next()).await;
    assert!(r.is_err(), "expected nothing to read, got {r:?}");
}

/// Appends `total` derived records in batches of random size 1..=64 on a thread.
fn writer(j: &Journal, total: u64, seed: u64) -> std::thread::JoinHandle<()> {
    let j = j.clone();
    std::thread::spawn(move || {
        let mut rng = Rng::new(seed);
        let end = j.last_seq() + total;
        while j.last_seq() < end {
            let first = j.last_seq() + 1;
            let n = rng.range(1, 65).min(end - first + 1);
            let drafts = (first..first + n).map(draft_for).collect();
            let recs = j.append_batch(drafts).unwrap();
            assert_eq!(recs[0].seq, first);
        }
    })
}

fn opts(buffer: usize) -> OpenOptions {
    OpenOptions {
        subscriber_buffer: buffer,
        ..small_opts()
    }
}

/// Reads from `sub` until it has seen `last`; returns how many times it lagged (and
/// resubscribed from the next seq). Checks every seq arrives exactly once, in order.
async fn read_through(j: &Journal, mut sub: Subscription, from: u64, last: u64) -> usize {
    let mut expect = from;
    let mut lags = 0;
    while expect <= last {
        match next(&mut sub).await {
            Some(SubEvent::Record(r)) => {
                assert_eq!(r.seq, expect, "gap or duplicate");
                check_derived(&r);
                expect += 1;
            }
            Some(SubEvent::Lagged) => {
                // Nothing follows Lagged.
                assert!(next(&mut sub).await.is_none());
                lags += 1;
                sub = j.subscribe_from(expect);
            }
            None => panic!("subscription ended at {expect}"),
        }
    }
    assert_eq!(sub.next_seq(), last + 1);
    lags
}

#[tokio::test]
async fn every_seq_exactly_once_across_the_switch_to_live() {
    const TOTAL: u64 = 20_000;
    let seed = common::seed("every_seq_exactly_once_across_the_switch_to_live");
    let dir = tempfile::tempdir().unwrap();
    // Big enough that nobody lags: the test is about the switch.
    let (j, _) = Journal::open(dir.path(), opts(1 << 16)).unwrap();
    let w = writer(&j, TOTAL, seed);
    // One subscriber from before the first record, others joining while the writer
    // runs (they catch up from disk, then switch to live).
    let mut readers = vec![tokio::spawn({
        let j = j.clone();
        async move { read_through(&j, j.subscribe_from(1), 1, TOTAL).await }
    })];
    for at in [500, 3_000, 9_000, 15_000] {
        while j.last_seq() < at && !w.is_finished() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let j = j.clone();
        readers.push(tokio::spawn(async move {
            read_through(&j, j.subscribe_from(1), 1, TOTAL).await
        }));
    }
    for r in readers {
        assert_eq!(
            r.await.unwrap(),
            0,
            "a subscriber lagged with a huge buffer"
        );
    }
    w.join().unwrap();
    assert_eq!(j.last_seq(), TOTAL);
}

#[tokio::test]
async fn resubscribing_after_lag_still_sees_every_seq_once() {
    const TOTAL: u64 = 5_000;
    let seed = common::seed("resubscribing_after_lag_still_sees_every_seq_once");
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), opts(16)).unwrap();
    let w = writer(&j, TOTAL, seed);
    // A slow reader with a tiny buffer: it lags, resumes from disk, and in the end has
    // seen everything once.
    let reader = tokio::spawn({
        let j = j.clone();
        async move {
            let mut sub = j.subscribe_from(1);
            let mut expect = 1;
            let mut lags = 0;
            while expect <= TOTAL {
                match next(&mut sub).await {
                    Some(SubEvent::Record(r)) => {
                        assert_eq!(r.seq, expect);
                        expect += 1;
                        if expect % 97 == 0 {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                    Some(SubEvent::Lagged) => {
                        assert!(next(&mut sub).await.is_none());
                        lags += 1;
                        sub = j.subscribe_from(expect);
                    }
                    None => panic!("ended at {expect}"),
                }
            }
            lags
        }
    });
    let lags = reader.await.unwrap();
    w.join().unwrap();
    eprintln!("slow reader lagged {lags} times");
}

#[tokio::test]
async fn subscribe_from_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    common::append_derived(&j, 1_000, 37);
    let sub = j.subscribe_from(500);
    assert_eq!(sub.next_seq(), 500);
    let w = writer(&j, 1_000, 7);
    assert_eq!(read_through(&j, sub, 500, 2_000).await, 0);
    w.join().unwrap();
    // And from the very last record, and from 0 (which means 1).
    let mut sub = j.subscribe_from(2_000);
    match next(&mut sub).await {
        Some(SubEvent::Record(r)) => assert_eq!(r.seq, 2_000),
        other => panic!("{other:?}"),
    }
    let mut sub = j.subscribe_from(0);
    match next(&mut sub).await {
        Some(SubEvent::Record(r)) => assert_eq!(r.seq, 1),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_subscriber_that_never_reads_lags_without_blocking_writers() {
    const BUFFER: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), opts(BUFFER)).unwrap();
    common::append_derived(&j, 10, 10);
    let mut sub = j.subscribe_from(11);
    go_live(&mut sub).await;
    assert_eq!(j.stats().unwrap().subscribers, 1);
    // Far more than the buffer, in batches that straddle its end; the subscriber does
    // not read meanwhile. Every append must complete.
    let done = Arc::new(AtomicBool::new(false));
    let w = std::thread::spawn({
        let j = j.clone();
        let done = done.clone();
        move || {
            for _ in 0..40 {
                let first = j.last_seq() + 1;
                j.append_batch((first..first + 5).map(draft_for).collect())
                    .unwrap();
            }
            done.store(true, Ordering::Release);
        }
    });
    w.join().unwrap();
    assert!(done.load(Ordering::Acquire));
    assert_eq!(j.last_seq(), 210);
    // The writer dropped the subscriber once its buffer was full.
    assert_eq!(j.stats().unwrap().subscribers, 0);
    // It gets what was buffered, in order, then Lagged, then the end.
    for want in 11..11 + BUFFER as u64 {
        match next(&mut sub).await {
            Some(SubEvent::Record(r)) => {
                assert_eq!(r.seq, want);
                check_derived(&r);
            }
            other => panic!("expected record {want}, got {other:?}"),
        }
    }
    assert!(matches!(next(&mut sub).await, Some(SubEvent::Lagged)));
    assert!(next(&mut sub).await.is_none());
    assert!(next(&mut sub).await.is_none());
    // Resuming from where it stopped works.
    let resumed = j.subscribe_from(11 + BUFFER as u64);
    assert_eq!(read_through(&j, resumed, 11 + BUFFER as u64, 210).await, 0);
}

#[tokio::test]
async fn close_ends_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    common::append_derived(&j, 20, 20);
    // One live and waiting in another task, one live and idle.
    let mut waiting = j.subscribe_from(21);
    go_live(&mut waiting).await;
    let waiter = tokio::spawn(async move { next(&mut waiting).await.is_none() });
    let mut idle = j.subscribe_from(15);
    for want in 15..=20 {
        assert!(matches!(next(&mut idle).await, Some(SubEvent::Record(r)) if r.seq == want));
    }
    go_live(&mut idle).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    j.close().unwrap();
    assert!(
        waiter.await.unwrap(),
        "the waiting subscription did not end with None"
    );
    assert!(next(&mut idle).await.is_none());
    // A subscription made after close reads what is on disk, then ends.
    let mut late = j.subscribe_from(18);
    for want in 18..=20 {
        assert!(matches!(next(&mut late).await, Some(SubEvent::Record(r)) if r.seq == want));
    }
    assert!(next(&mut late).await.is_none());
    assert_eq!(j.stats().unwrap().subscribers, 0);
}

#[tokio::test]
async fn subscribe_beyond_the_tip_then_append() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    common::append_derived(&j, 10, 10);
    let mut sub = j.subscribe_from(15);
    go_live(&mut sub).await;
    common::append_derived(&j, 30, 3);
    for want in 15..=40 {
        match next(&mut sub).await {
            Some(SubEvent::Record(r)) => {
                assert_eq!(r.seq, want);
                check_derived(&r);
            }
            other => panic!("expected {want}, got {other:?}"),
        }
    }
    // Also on an empty journal.
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    let mut sub = j.subscribe_from(1);
    go_live(&mut sub).await;
    let w = writer(&j, 300, 3);
    let lags = read_through(&j, sub, 1, 300).await;
    assert_eq!(lags, 0);
    w.join().unwrap();
}

/// Polls a future once, outside any runtime (the subscription's live end is a tokio
/// channel, which needs none). Busy-polling keeps the race test below tight: a tokio
/// timer would cost a millisecond tick per attempt.
fn poll_once<F: std::future::Future>(f: F) -> Option<F::Output> {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = std::task::Waker::from(Arc::new(Noop));
    let f = std::pin::pin!(f);
    match f.poll(&mut std::task::Context::from_waker(&waker)) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Subscriptions switching to live right at the tip, all the time, while a writer
/// publishes single-record batches: the moment between a subscription's last disk read
/// and its live registration is tiny, so only many attempts spread over the whole run
/// make some of them race a publish. Each must still start exactly at its first seq.
#[test]
fn switch_to_live_racing_the_writer() {
    const BATCHES: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small_opts()).unwrap();
    let w = {
        let j = j.clone();
        std::thread::spawn(move || {
            for seq in 1..=BATCHES {
                j.append_batch(vec![draft_for(seq)]).unwrap();
            }
        })
    };
    let check = |ev: Option<berth_journal::Result<SubEvent>>, from: u64| match ev {
        Some(Ok(SubEvent::Record(r))) => {
            assert_eq!(
                r.seq, from,
                "a subscription from {from} started at {}",
                r.seq
            )
        }
        other => panic!("subscription from {from}: {other:?}"),
    };
    let mut pending: std::collections::VecDeque<(Subscription, u64)> = Default::default();
    let mut attempts = 0u64;
    while !w.is_finished() {
        // A new subscription at the tip, polled once: it reads what is on disk or
        // registers live.
        let from = j.last_seq() + 1;
        let mut sub = j.subscribe_from(from);
        attempts += 1;
        match poll_once(sub.next()) {
            Some(ev) => check(ev, from),
            None => pending.push_back((sub, from)),
        }
        // Retire the oldest ones that have their first record by now.
        while let Some((mut sub, from)) = pending.pop_front() {
            match poll_once(sub.next()) {
                Some(ev) => check(ev, from),
                None => {
                    pending.push_front((sub, from));
                    break;
                }
            }
        }
    }
    w.join().unwrap();
    for (mut sub, from) in pending {
        if from <= BATCHES {
            // Everything is published by now: the first record is buffered.
            check(poll_once(sub.next()).expect("buffered"), from);
        }
    }
    eprintln!("{attempts} subscriptions switched to live around {BATCHES} publishes");
}
