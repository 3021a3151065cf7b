//! `GET /v1/events`: order, resumption with `Last-Event-ID`, an immediate head,
//! keep-alives, filters, and slow subscribers that never hold writers back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_tests::raw::{parse_sse, RawStream};
use berth_tests::{create_ns, delete_ns, last_seq, next_event, TestDaemon, GENESIS_SEQ};
use http_body_util::BodyExt;
use hyper::Method;

/// `(id, topic, namespace)` of the next message, checking that `data` agrees with `id:`.
async fn next_triple(s: &mut berth_http::client::EventStream) -> (u64, String, String) {
    let m = next_event(s).await;
    let v = m.envelope().unwrap_or_else(|e| panic!("{e}: {}", m.data));
    let id = m.id.expect("every event has an id");
    assert_eq!(v.seq, id);
    assert_eq!(m.event.as_deref(), Some(v.topic.as_str()));
    (id, v.topic, v.namespace)
}

fn t(id: u64, topic: &str, ns: &str) -> (u64, String, String) {
    (id, topic.to_string(), ns.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn since_zero_replays_then_follows_in_order() {
    let d = TestDaemon::start();
    let c = d.client();
    create_ns(&c, "a").await;
    create_ns(&c, "b").await;

    let mut s = c.events("since=0", None).await.unwrap();
    // The genesis records first: the default namespace, then the default network.
    assert_eq!(
        next_triple(&mut s).await,
        t(1, "namespace.created", "default")
    );
    assert_eq!(
        next_triple(&mut s).await,
        t(GENESIS_SEQ, "network.created", "default")
    );
    assert_eq!(
        next_triple(&mut s).await,
        t(GENESIS_SEQ + 1, "namespace.created", "a")
    );
    assert_eq!(
        next_triple(&mut s).await,
        t(GENESIS_SEQ + 2, "namespace.created", "b")
    );
    // Then live.
    delete_ns(&c, "a").await;
    create_ns(&c, "c").await;
    assert_eq!(
        next_triple(&mut s).await,
        t(GENESIS_SEQ + 3, "namespace.deleted", "a")
    );
    assert_eq!(
        next_triple(&mut s).await,
        t(GENESIS_SEQ + 4, "namespace.created", "c")
    );

    // The first event of a `since=N` stream is N+1; `Last-Event-ID` wins over `since`.
    let since = GENESIS_SEQ + 2;
    let mut s = c.events(&format!("since={since}"), None).await.unwrap();
    assert_eq!(next_triple(&mut s).await.0, GENESIS_SEQ + 3);
    let mut s = c.events("since=0", Some(GENESIS_SEQ + 3)).await.unwrap();
    assert_eq!(next_triple(&mut s).await.0, GENESIS_SEQ + 4);

    // Without either, only new events.
    let mut s = c.events("", None).await.unwrap();
    create_ns(&c, "d").await;
    assert_eq!(
        next_triple(&mut s).await,
        t(GENESIS_SEQ + 5, "namespace.created", "d")
    );
}

/// A subscriber that keeps disconnecting and resuming with the last id it saw, while a
/// writer keeps appending, receives every event exactly once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resuming_with_last_event_id_loses_and_repeats_nothing() {
    let d = TestDaemon::start();
    let c = d.client();
    let final_seq = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn({
        let c = c.clone();
        let final_seq = final_seq.clone();
        async move {
            let mut last = 0;
            for i in 0..60 {
                let name = format!("ns-{i}");
                last = create_ns(&c, &name).await.seq;
                if i % 3 == 0 {
                    last = delete_ns(&c, &name).await;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            final_seq.store(last, Ordering::SeqCst);
        }
    });

    let mut seen: Vec<u64> = Vec::new();
    let mut last = 0u64;
    let mut cycles = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    'cycles: loop {
        assert!(
            Instant::now() < deadline,
            "not done after 60 s; saw {seen:?}"
        );
        let mut s = c.events("", Some(last)).await.unwrap();
        cycles += 1;
        for _ in 0..=(cycles % 6) {
            let fin = final_seq.load(Ordering::SeqCst);
            if fin != 0 && last >= fin {
                break 'cycles;
            }
            match tokio::time::timeout(Duration::from_millis(500), s.next()).await {
                Ok(Some(Ok(m))) => {
                    let id = m.id.expect("an id");
                    assert_eq!(m.envelope().unwrap().seq, id);
                    seen.push(id);
                    last = id;
                }
                Ok(Some(Err(e))) => panic!("stream failed: {e}"),
                Ok(None) => panic!("the stream ended"),
                // Idle: reconnect and check for the end again.
                Err(_) => break,
            }
        }
    }
    writer.await.unwrap();
    let fin = last_seq(&c).await;
    assert_eq!(fin, final_seq.load(Ordering::SeqCst));
    assert_eq!(fin, GENESIS_SEQ + 60 + 20);
    assert_eq!(seen, (1..=fin).collect::<Vec<_>>(), "after {cycles} cycles");
    assert!(cycles >= 10, "only {cycles} reconnect cycles");
}

/// The response head and a first comment arrive before any event exists.
#[tokio::test(flavor = "multi_thread")]
async fn head_and_first_comment_arrive_at_once() {
    let d = TestDaemon::start();
    let c = d.client();
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        c.send(Method::GET, "/v1/events", None, &[]),
    )
    .await
    .expect("the response head did not arrive within 5 s")
    .unwrap();
    assert_eq!(res.status(), 200);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
    let mut body = res.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first comment did not arrive within 5 s")
        .expect("a frame")
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("retry: "), "{text:?}");
    assert!(
        text.contains(&format!(
            "\n: berth event stream from seq {}\n",
            GENESIS_SEQ + 1
        )),
        "{text:?}"
    );
    assert_eq!(
        last_seq(&c).await,
        GENESIS_SEQ,
        "nothing was written meanwhile"
    );
}

/// An idle stream carries keep-alive comments.
#[test]
fn idle_stream_carries_keep_alives() {
    let d = TestDaemon::builder()
        .config("[api]\nkeepalive_secs = 1\n")
        .start();
    let mut raw = RawStream::get(d.socket(), "/v1/events", &[]);
    assert!(
        raw.read_until(": keep-alive\n\n", 2, Duration::from_secs(8)),
        "no two keep-alives within 8 s: {:?}",
        String::from_utf8_lossy(raw.bytes())
    );
    let res = raw.response();
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("text/event-stream"));
    let blocks = parse_sse(&res.text());
    assert!(blocks.iter().all(|b| b.id.is_none() && b.event.is_none()));
    assert!(raw.read_some(Duration::ZERO), "the stream stays open");
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_deliver_only_matching_events() {
    let d = TestDaemon::start();
    let c = d.client();
    let g = GENESIS_SEQ;
    create_ns(&c, "x").await; // g + 1
    create_ns(&c, "y").await; // g + 2
    delete_ns(&c, "x").await; // g + 3
    create_ns(&c, "z").await; // g + 4
    delete_ns(&c, "y").await; // g + 5
    create_ns(&c, "x").await; // g + 6

    let mut deleted = c
        .events("since=0&topic=namespace.deleted", None)
        .await
        .unwrap();
    let mut of_x = c.events("since=0&namespace=x", None).await.unwrap();
    let mut both = c
        .events("since=0&namespace=x&topic=namespace.deleted", None)
        .await
        .unwrap();
    let mut prefixes = c
        .events("since=0&topic=namespace.deleted,namespace.created", None)
        .await
        .unwrap();

    assert_eq!(
        next_triple(&mut deleted).await,
        t(g + 3, "namespace.deleted", "x")
    );
    assert_eq!(
        next_triple(&mut deleted).await,
        t(g + 5, "namespace.deleted", "y")
    );
    assert_eq!(
        next_triple(&mut of_x).await,
        t(g + 1, "namespace.created", "x")
    );
    assert_eq!(
        next_triple(&mut of_x).await,
        t(g + 3, "namespace.deleted", "x")
    );
    assert_eq!(
        next_triple(&mut of_x).await,
        t(g + 6, "namespace.created", "x")
    );
    assert_eq!(
        next_triple(&mut both).await,
        t(g + 3, "namespace.deleted", "x")
    );
    // Every namespace record, but not the default network's `network.created` (seq 2).
    assert_eq!(
        next_triple(&mut prefixes).await,
        t(1, "namespace.created", "default")
    );
    for id in g + 1..=g + 6 {
        assert_eq!(next_triple(&mut prefixes).await.0, id);
    }

    // Live: non-matching events in between are skipped, the next match arrives.
    create_ns(&c, "w").await; // g + 7
    delete_ns(&c, "w").await; // g + 8
    delete_ns(&c, "x").await; // g + 9
    assert_eq!(
        next_triple(&mut deleted).await,
        t(g + 8, "namespace.deleted", "w")
    );
    assert_eq!(
        next_triple(&mut deleted).await,
        t(g + 9, "namespace.deleted", "x")
    );
    assert_eq!(
        next_triple(&mut of_x).await,
        t(g + 9, "namespace.deleted", "x")
    );
    assert_eq!(
        next_triple(&mut both).await,
        t(g + 9, "namespace.deleted", "x")
    );
}

/// A subscriber that reads nothing is dropped with `event: resync` once its buffer
/// fills; the writers never wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_subscriber_gets_resync_and_never_blocks_writers() {
    const WRITERS: usize = 32;
    const PER_WRITER: usize = 100;
    let d = TestDaemon::builder()
        .config("[journal]\nsubscriber_buffer = 64\n")
        .start();
    let c = d.client();
    let mut raw = RawStream::get(d.socket(), "/v1/events", &[]);
    tokio::task::block_in_place(|| {
        let head = format!("berth event stream from seq {}", GENESIS_SEQ + 1);
        assert!(raw.read_until(&head, 1, Duration::from_secs(5)));
    });
    // One event read off the wire: the subscription is live.
    create_ns(&c, "first").await;
    tokio::task::block_in_place(|| {
        assert!(raw.read_until("event: namespace.created", 1, Duration::from_secs(10)));
    });

    // From here on, nothing is read from `raw`.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                create_ns(&c, &format!("w{w}-{i}")).await;
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(120), async {
        for task in tasks {
            task.await.expect("every create succeeds");
        }
    })
    .await
    .expect("writers were blocked by a subscriber that does not read");
    let took = started.elapsed();
    let last = last_seq(&c).await;
    assert_eq!(
        last,
        GENESIS_SEQ + 1 + u64::try_from(WRITERS * PER_WRITER).unwrap()
    );

    tokio::task::block_in_place(|| raw.read_to_end(Duration::from_secs(30)));
    let res = raw.response();
    assert_eq!(res.status, 200);
    assert!(res.complete, "the chunked body was not terminated");
    let events: Vec<_> = parse_sse(&res.text())
        .into_iter()
        .filter(|b| b.event.is_some())
        .collect();
    let (resync, records) = events.split_last().expect("some events");
    assert_eq!(resync.event.as_deref(), Some("resync"), "last: {resync:?}");
    let ids: Vec<u64> = records.iter().map(|b| b.id.expect("an id")).collect();
    let n = u64::try_from(ids.len()).unwrap();
    let first = GENESIS_SEQ + 1;
    assert_eq!(
        ids,
        (first..first + n).collect::<Vec<_>>(),
        "delivered in order, no gap"
    );
    assert!(
        first + n <= last,
        "it fell behind: got {n} of {} events",
        last - GENESIS_SEQ
    );
    let data: serde_json::Value = serde_json::from_str(&resync.data).unwrap();
    assert_eq!(
        data["next"],
        first + n,
        "resync names where to resume: {data}"
    );
    eprintln!(
        "{} creates with a stuck subscriber took {took:?}; it got {n} events, then resync",
        WRITERS * PER_WRITER
    );
}
