//! The journal writer, recovery and upcasting, against a real journal in a temp dir.

use std::collections::BTreeSet;
use std::sync::Arc;

use berth_actors::journal_writer::{SharedState, WriterConfig, WriterHandle};
use berth_actors::recovery::recover;
use berth_engine::event::{v1, NamespaceCreated, NamespaceDeleted};
use berth_engine::ids::{Labels, NamespaceName};
use berth_engine::{Event, State};
use berth_journal::{Draft, Journal, OpenOptions, StreamRef};

fn ns(n: &str) -> NamespaceName {
    NamespaceName::parse(n).unwrap()
}

fn created(n: &str) -> Event {
    Event::NamespaceCreated(NamespaceCreated {
        name: ns(n),
        labels: Labels::new(),
        created_at: chrono::Utc::now(),
    })
}

fn open(dir: &std::path::Path) -> (Journal, berth_journal::OpenReport) {
    // A just-dropped sled handle can hold its file lock for a moment.
    for _ in 0..200 {
        match Journal::open(dir, OpenOptions::default()) {
            Ok(j) => return j,
            Err(berth_journal::JournalError::Locked { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("open: {e}"),
        }
    }
    panic!("journal stayed locked");
}

fn replay(journal: &Journal) -> State {
    let mut s = State::new();
    for r in journal.iter_from(1) {
        let r = r.unwrap();
        let e = Event::decode(&r.topic, r.schema, &r.payload, r.at).unwrap();
        s.apply_at(r.seq, &e);
    }
    s
}

#[test]
fn concurrent_appends_get_contiguous_unique_seqs_and_state_equals_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    let writer = WriterHandle::spawn(
        journal.clone(),
        SharedState::default(),
        WriterConfig {
            checkpoint_every: 50,
            ..WriterConfig::default()
        },
    );
    let threads = 16;
    let per = 40;
    let seqs: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let w = writer.clone();
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..per {
                        let mut events = vec![created(&format!("n{t}-{i}"))];
                        if i % 3 == 0 {
                            events.push(Event::NamespaceDeleted(NamespaceDeleted {
                                name: ns(&format!("n{t}-{i}")),
                            }));
                        }
                        let c = w.append_blocking(events.clone()).unwrap();
                        assert_eq!(c.seqs.len(), events.len());
                        // a multi-event append is contiguous
                        assert!(c.seqs.windows(2).all(|w| w[1] == w[0] + 1));
                        // the state reflects the append when it returns
                        assert!(w.state().read().seq >= c.last_seq());
                        mine.extend(c.seqs);
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: BTreeSet<u64> = seqs.iter().flatten().copied().collect();
    let total: usize = seqs.iter().map(Vec::len).sum();
    assert_eq!(all.len(), total, "no seq handed out twice");
    assert_eq!(
        all.iter().copied().collect::<Vec<_>>(),
        (1..=total as u64).collect::<Vec<_>>()
    );
    for s in &seqs {
        assert!(
            s.windows(2).all(|w| w[0] < w[1]),
            "one writer's appends are in order"
        );
    }
    let live = writer.state().read().clone();
    assert_eq!(live.seq, total as u64);
    assert_eq!(replay(&journal), live, "replay(events) == live state");
}

#[test]
fn recovery_from_checkpoint_equals_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (journal, _) = open(dir.path());
        let writer = WriterHandle::spawn(
            journal.clone(),
            SharedState::default(),
            WriterConfig {
                checkpoint_every: 0,
                ..WriterConfig::default()
            },
        );
        for i in 0..100 {
            writer
                .append_blocking(vec![created(&format!("a{i}"))])
                .unwrap();
        }
        let rt = tokio_rt();
        let cp = rt.block_on(writer.checkpoint()).unwrap();
        assert_eq!(cp, 100);
        for i in 0..30 {
            writer
                .append_blocking(vec![Event::NamespaceDeleted(NamespaceDeleted {
                    name: ns(&format!("a{i}")),
                })])
                .unwrap();
        }
        journal.close().unwrap();
    }
    let (journal, report) = open(dir.path());
    assert_eq!(report.checkpoint_seq, Some(100));
    let (state, rec) = recover(&journal, report).unwrap();
    assert_eq!(rec.checkpoint_seq, Some(100));
    assert_eq!(rec.replayed, 30);
    assert_eq!(state.seq, 130);
    assert_eq!(state, replay(&journal));
    assert_eq!(state.namespaces.len(), 70);
}

fn tokio_rt() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
    )
}

#[test]
fn frozen_v1_events_in_the_journal_are_upcast_on_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    let at = chrono::DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let payload = rmp_serde::to_vec_named(&v1::NamespaceCreatedV1 { name: ns("legacy") }).unwrap();
    journal
        .append_batch(vec![Draft {
            at,
            namespace: "legacy".into(),
            stream: StreamRef::new("namespace", "legacy"),
            topic: "namespace.created".into(),
            schema: 1,
            payload,
        }])
        .unwrap();
    let (state, _) = recover(&journal, Default::default()).unwrap();
    let legacy = &state.namespaces[&ns("legacy")];
    assert!(legacy.labels.is_empty());
    assert_eq!(legacy.created_at, at);
}

#[test]
fn an_event_from_a_newer_berth_stops_recovery_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    journal
        .append_batch(vec![Draft {
            at: chrono::Utc::now(),
            namespace: "default".into(),
            stream: StreamRef::new("container", "c1"),
            topic: "container.teleported".into(),
            schema: 1,
            payload: vec![0x80],
        }])
        .unwrap();
    let err = recover(&journal, Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("record 1") && err.contains("container.teleported"),
        "{err}"
    );
}

#[test]
fn appends_that_arrive_together_share_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    let writer = WriterHandle::spawn(
        journal.clone(),
        SharedState::default(),
        WriterConfig::default(),
    );
    let rt = tokio_rt();
    let n: u64 = 200;
    let results = rt.block_on(async {
        // All appends are queued in the first poll; the writer takes what has arrived.
        let futs = (0..n).map(|i| {
            let w = writer.clone();
            async move { w.append(vec![created(&format!("g{i}"))]).await }
        });
        futures_join_all(futs).await
    });
    assert!(results.iter().all(|r| r.is_ok()));
    let stats = journal.stats().unwrap();
    assert_eq!(stats.appended_since_open, n);
    assert!(
        stats.batches_since_open <= 10,
        "{} appends took {} fsyncs; group commit should need a handful",
        n,
        stats.batches_since_open
    );
}

async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.map(Box::pin).collect();
    let mut out = Vec::new();
    // Poll all once (enqueueing every append) before awaiting any.
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        for slot in pending.iter_mut() {
            if let Some(f) = slot {
                if let std::task::Poll::Ready(v) = f.as_mut().poll(cx) {
                    out.push(v);
                    *slot = None;
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out
}

#[test]
fn single_pass_recovery_equals_replay_and_survives_an_unusable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (journal, _) = open(dir.path());
        let writer = WriterHandle::spawn(
            journal.clone(),
            SharedState::default(),
            WriterConfig {
                checkpoint_every: 0,
                ..WriterConfig::default()
            },
        );
        for i in 0..50 {
            writer
                .append_blocking(vec![created(&format!("s{i}"))])
                .unwrap();
        }
        tokio_rt().block_on(writer.checkpoint()).unwrap();
        for i in 0..10 {
            writer
                .append_blocking(vec![created(&format!("t{i}"))])
                .unwrap();
        }
        journal.close().unwrap();
    }
    let expected = {
        let (journal, _) = open(dir.path());
        let s = replay(&journal);
        drop(journal);
        s
    };
    let r = retry_locked(|| berth_actors::open_and_recover(dir.path(), OpenOptions::default()));
    assert_eq!(r.report.checkpoint_seq, Some(50));
    assert_eq!(r.report.replayed, 10);
    assert_eq!(r.state, expected);
    // A checkpoint this berth cannot read (another state schema, say): full replay.
    r.journal.checkpoint(60, b"not a state".to_vec()).unwrap();
    r.journal.close().unwrap();
    drop(r);
    let r = retry_locked(|| berth_actors::open_and_recover(dir.path(), OpenOptions::default()));
    assert!(r.report.checkpoint_rejected.is_some());
    assert_eq!(r.report.checkpoint_seq, None);
    assert_eq!(r.report.replayed, 60);
    assert_eq!(r.state, expected);
}

fn retry_locked(
    f: impl Fn() -> Result<berth_actors::Recovered, berth_actors::recovery::RecoveryError>,
) -> berth_actors::Recovered {
    for _ in 0..200 {
        match f() {
            Ok(r) => return r,
            Err(berth_actors::recovery::RecoveryError::Journal(
                berth_journal::JournalError::Locked { .. },
            )) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(e) => panic!("{e}"),
        }
    }
    panic!("journal stayed locked");
}

#[test]
fn single_pass_recovery_refuses_an_event_it_cannot_decode() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (journal, _) = open(dir.path());
        let mut drafts = Vec::new();
        for i in 0..1500 {
            let e = created(&format!("n{i}"));
            drafts.push(Draft {
                at: chrono::Utc::now(),
                namespace: e.namespace().to_string(),
                stream: StreamRef::new("namespace", format!("n{i}")),
                topic: e.topic().into(),
                schema: e.schema(),
                payload: e.encode_payload(),
            });
        }
        drafts.push(Draft {
            at: chrono::Utc::now(),
            namespace: "default".into(),
            stream: StreamRef::new("container", "c1"),
            topic: "container.teleported".into(),
            schema: 1,
            payload: vec![0x80],
        });
        journal.append_batch(drafts).unwrap();
        journal.close().unwrap();
    }
    let err = match berth_actors::open_and_recover(dir.path(), OpenOptions::default()) {
        Ok(_) => panic!("recovery accepted an undecodable event"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("1501") && err.contains("container.teleported"),
        "{err}"
    );
}
