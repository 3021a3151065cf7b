//! Restarts: after SIGKILL the history is the same and new events follow on; SIGTERM
//! is a clean exit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_tests::{create_ns, delete_ns, last_seq, next_event, TestDaemon, GENESIS_SEQ};

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_keeps_history_and_seqs_continue() {
    let mut d = TestDaemon::start();
    let c = d.client();
    create_ns(&c, "survivor").await;
    create_ns(&c, "gone").await;
    delete_ns(&c, "gone").await;
    let before = c.journal_page(1, 10_000).await.unwrap();
    let tip = GENESIS_SEQ + 3;
    assert_eq!(before.last_seq, tip);
    assert_eq!(
        before.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=tip).collect::<Vec<_>>()
    );

    d.kill_9();
    assert!(c.health().await.is_err(), "a killed daemon must not answer");
    d.restart();

    let after = c.journal_page(1, 10_000).await.unwrap();
    assert_eq!(after, before, "history differs after kill -9 and restart");
    let names: Vec<String> = c
        .namespaces()
        .await
        .unwrap()
        .namespaces
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["default", "survivor"]);

    // New events follow at the next seq, in the journal and on the event stream.
    let mut events = c.events("", Some(tip)).await.unwrap();
    let created = create_ns(&c, "newcomer").await;
    assert_eq!(created.seq, tip + 1);
    let m = next_event(&mut events).await;
    assert_eq!(m.id, Some(tip + 1));
    assert_eq!(m.event.as_deref(), Some("namespace.created"));
    assert_eq!(m.envelope().unwrap().namespace, "newcomer");
    let page = c.journal_page(1, 10_000).await.unwrap();
    assert_eq!(page.records[..before.records.len()], before.records[..]);
    assert_eq!(page.last_seq, tip + 1);
}

/// Every write the daemon acknowledged before SIGKILL is there after the restart, and
/// the journal has no gap.
#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_kill_9() {
    let mut d = TestDaemon::start();
    let c = d.client();
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let c = c.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-{i}");
                match c.create_namespace(&berth_tests::ns_req(&name)).await {
                    Ok(r) => acked.lock().unwrap().push((name, r.seq)),
                    Err(_) => return,
                }
            }
        }));
    }
    // Let the writers get going, then pull the plug mid-stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writers made no progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    d.kill_9();
    for w in writers {
        tokio::time::timeout(Duration::from_secs(20), w)
            .await
            .expect("writers stop once the daemon is gone")
            .unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    d.restart();
    let page = c.journal_page(1, 10_000).await.unwrap();
    let seqs: Vec<u64> = page.records.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (1..=page.last_seq).collect::<Vec<_>>(),
        "gap in the journal"
    );
    let list = c.namespaces().await.unwrap();
    for (name, seq) in &acked {
        assert!(*seq <= page.last_seq, "{name} was acknowledged at {seq}");
        assert!(
            list.namespaces.iter().any(|n| &n.name == name),
            "acknowledged namespace {name} (seq {seq}) lost"
        );
        let rec = &page.records[usize::try_from(*seq - 1).unwrap()];
        assert_eq!(rec.namespace, *name);
        assert_eq!(rec.topic, "namespace.created");
    }
}

/// Recovery from a checkpoint plus the records after it builds the same state.
#[tokio::test(flavor = "multi_thread")]
async fn restart_from_checkpoint() {
    let mut d = TestDaemon::builder()
        .arg("--checkpoint-every")
        .arg("5")
        .start();
    let c = d.client();
    for i in 0..12 {
        create_ns(&c, &format!("n{i}")).await;
    }
    delete_ns(&c, "n3").await;
    let before = c.journal_page(1, 10_000).await.unwrap();
    let names_before = c.namespaces().await.unwrap();
    d.kill_9();
    d.restart();
    let stats = c.journal_stats().await.unwrap();
    let cp = stats
        .recovery
        .checkpoint_seq
        .expect("recovery started from a checkpoint");
    assert!(cp >= 5 && cp <= before.last_seq, "checkpoint at {cp}");
    assert_eq!(stats.recovery.replayed, before.last_seq - cp);
    assert_eq!(stats.recovery.seq, before.last_seq);
    assert_eq!(c.journal_page(1, 10_000).await.unwrap(), before);
    assert_eq!(c.namespaces().await.unwrap(), names_before);
    assert!(c.journal_verify().await.unwrap().ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exits_cleanly_and_restarts() {
    let mut d = TestDaemon::start();
    let c = d.client();
    create_ns(&c, "kept").await;
    let before = c.journal_page(1, 10_000).await.unwrap();

    // An open event stream is told about the shutdown, then ends.
    let mut events = c.events("", None).await.unwrap();
    let status = d.terminate();
    assert_eq!(status.code(), Some(0), "berthd exit status: {status}");
    assert!(!d.socket().exists(), "the socket file was not removed");
    let m = next_event(&mut events).await;
    assert_eq!(m.event.as_deref(), Some("shutdown"));
    let end = tokio::time::timeout(Duration::from_secs(10), events.next()).await;
    assert!(matches!(end, Ok(None)), "the stream did not end: {end:?}");

    d.restart();
    assert_eq!(c.journal_page(1, 10_000).await.unwrap(), before);
    let seq = create_ns(&c, "after").await.seq;
    assert_eq!(seq, before.last_seq + 1);
    assert_eq!(last_seq(&c).await, before.last_seq + 1);
    let status = d.terminate();
    assert!(status.success(), "{status}");
}

/// A subscriber that stopped reading (its socket full) does not keep SIGTERM from
/// ending the daemon cleanly, and everything acknowledged is there after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_a_stuck_subscriber() {
    let mut d = TestDaemon::start();
    let c = d.client();
    let mut raw = berth_tests::raw::RawStream::get(d.socket(), "/v1/events?since=0", &[]);
    tokio::task::block_in_place(|| {
        assert!(raw.read_until("event: namespace.created", 1, Duration::from_secs(10)));
    });
    let mut tasks = Vec::new();
    for w in 0..16 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                create_ns(&c, &format!("w{w}-{i}")).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let last = last_seq(&c).await;
    let started = std::time::Instant::now();
    let status = tokio::task::block_in_place(|| d.terminate());
    eprintln!(
        "exit after {:?} with a stuck subscriber: {status}",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{status}");
    drop(raw);
    d.restart();
    assert_eq!(last_seq(&c).await, last);
}
