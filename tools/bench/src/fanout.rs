//! `fanout`: SSE fan-out through the real API.
//!
//! Inside an actix system: a fresh journal, `berth_actors::start`, `berth_http::run` on a
//! unix socket. S subscribers connect with `Client::events("since=<tip>")` before
//! anything is written (each a task on a separate client runtime, counting the
//! `namespace.*` messages it receives and noting `resync`); then N events are written
//! through the journal writer by concurrent tasks (group commit). Reports per-subscriber
//! counts, resyncs, loss, write time and delivery time.

use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use berth_actors::RuntimeConfig;
use berth_http::client::Client;
use berth_http::{ApiConfig, Listeners};
use berth_journal::{Journal, OpenOptions};
use serde_json::{json, Value};

use crate::common::{cpu, ms, per_sec, r2, thousands, writer_event};

/// berthd's default `journal.subscriber_buffer`.
const DAEMON_SUBSCRIBER_BUFFER: usize = 131_072;

/// Options of `fanout`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events to write
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// SSE subscribers
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Concurrent writer tasks
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// Events per append call of each writer task
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Per-subscriber live buffer(s), in records, one run each [default: berthd's 131072,
    /// then, if anything was lost, one run with a buffer larger than --events]
    #[arg(long, value_delimiter = ',')]
    buffer: Vec<usize>,
    /// API worker threads (berthd's default: 2)
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Threads of the runtime the subscribers run on
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// After a resync, reconnect with Last-Event-ID (as a real client would) instead of
    /// stopping; loss is then what never arrived even after resuming
    #[arg(long)]
    resume: bool,
    /// Give up waiting for the subscribers after this many seconds
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

/// What one subscriber saw (shared, so a timeout can still read it).
#[derive(Default)]
struct SubStats {
    received: AtomicU64,
    resyncs: AtomicU64,
    /// Messages whose id was not the one after the previous.
    out_of_order: AtomicU64,
    done: AtomicBool,
    finished: Mutex<Option<Instant>>,
    ended: Mutex<String>,
}

async fn subscriber(
    client: Client,
    base: u64,
    n: u64,
    resume: bool,
    stats: Arc<SubStats>,
    ready: tokio::sync::mpsc::Sender<()>,
) {
    let end = |why: String| {
        *stats.finished.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        *stats.ended.lock().unwrap_or_else(|p| p.into_inner()) = why;
        stats.done.store(true, Ordering::Release);
    };
    let mut stream = match client.events(&format!("since={base}"), None).await {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(()).await;
            return end(format!("connect error: {e}"));
        }
    };
    let _ = ready.send(()).await;
    drop(ready);
    let mut last = base;
    let mut received = 0u64;
    loop {
        match stream.next().await {
            Some(Ok(msg)) => match msg.event.as_deref() {
                Some(t) if t.starts_with("namespace.") => {
                    let id = msg.id.unwrap_or(0);
                    if id != last + 1 {
                        stats.out_of_order.fetch_add(1, Ordering::Relaxed);
                    }
                    last = last.max(id);
                    received += 1;
                    stats.received.store(received, Ordering::Relaxed);
                    if received >= n {
                        return end("complete".into());
                    }
                }
                Some("resync") => {
                    stats.resyncs.fetch_add(1, Ordering::Relaxed);
                    if !resume {
                        return end("resync".into());
                    }
                    stream = match client.events("", Some(last)).await {
                        Ok(s) => s,
                        Err(e) => return end(format!("reconnect error: {e}")),
                    };
                }
                Some(other) => return end(format!("stream ended with event {other:?}")),
                None => {}
            },
            Some(Err(e)) => return end(format!("stream error: {e}")),
            None => return end("stream closed".into()),
        }
    }
}

/// A readable name for a thread group (thread names are cut at 15 bytes).
fn thread_label(comm: &str) -> String {
    match comm {
        "actix-rt|system" => "API workers (actix arbiters)".into(),
        "bench-sse-clien" => "SSE clients (this benchmark)".into(),
        "berth-journal-w" => "journal writer".into(),
        "berth-checkpoin" => "checkpoint thread".into(),
        "berth-bench" => "main thread (writer tasks, accept loop)".into(),
        other => other.to_string(),
    }
}

struct Outcome {
    json: Value,
    loss: u64,
}

fn run_one(
    args: &Args,
    buffer: usize,
    clients: &tokio::runtime::Handle,
) -> anyhow::Result<Outcome> {
    let tmp = tempfile::tempdir()?;
    let sock = tmp.path().join("berth.sock");
    let jdir = tmp.path().join("journal");
    let system = actix::System::new();
    system.block_on(async {
        let (journal, open) = Journal::open(
            &jdir,
            OpenOptions {
                subscriber_buffer: buffer,
                ..OpenOptions::default()
            },
        )?;
        let stores = berth_actors::storage::Stores::open(
            tmp.path(),
            berth_actors::storage::SnapshotterKind::Native,
        )?;
        let recovered = berth_actors::recover_opened(journal.clone(), open)?;
        let env = berth_actors::container::ContainerEnv::new(tmp.path(), &tmp.path().join("state"));
        let handles = berth_actors::start(recovered, RuntimeConfig::default(), stores, env)
            .await
            .context("starting the actors")?;
        let listener = UnixListener::bind(&sock)?;
        listener.set_nonblocking(true)?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = actix::spawn(berth_http::run(
            Listeners {
                unix: Some(listener),
                tcp: None,
            },
            handles.clone(),
            ApiConfig {
                workers: args.workers,
                ..ApiConfig::default()
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        let client = Client::unix(&sock);
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.health().await.is_err() {
            if Instant::now() > deadline {
                bail!("the API did not come up");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // Subscribers, all connected before anything is written.
        let base = handles.journal.last_seq();
        let n = args.events;
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(args.subscribers.max(1));
        let stats: Vec<Arc<SubStats>> = (0..args.subscribers)
            .map(|_| Arc::new(SubStats::default()))
            .collect();
        let connect_started = Instant::now();
        let tasks: Vec<_> = stats
            .iter()
            .map(|s| {
                clients.spawn(subscriber(
                    client.clone(),
                    base,
                    n,
                    args.resume,
                    s.clone(),
                    ready_tx.clone(),
                ))
            })
            .collect();
        drop(ready_tx);
        for _ in 0..args.subscribers {
            if ready_rx.recv().await.is_none() {
                break;
            }
        }
        let connect_time = connect_started.elapsed();

        // Writes, through the journal writer, from concurrent tasks.
        let cpu_threads0 = cpu::by_thread_group();
        let cpu0 = cpu::process();
        let next = Arc::new(AtomicU64::new(0));
        let batch = args.batch.max(1) as u64;
        let write_started = Instant::now();
        let writes = (0..args.writers.max(1)).map(|w| {
            let writer = handles.writer.clone();
            let next = next.clone();
            async move {
                let mut i = 0u64;
                loop {
                    let k = next.fetch_add(batch, Ordering::Relaxed);
                    if k >= n {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let events = (0..batch.min(n - k))
                        .map(|_| {
                            let e = writer_event(w, i);
                            i += 1;
                            e
                        })
                        .collect();
                    writer
                        .append(events)
                        .await
                        .map_err(|e| anyhow::anyhow!("append failed: {e}"))?;
                }
            }
        });
        for r in futures_util::future::join_all(writes).await {
            r?;
        }
        let write_time = write_started.elapsed();

        // Wait for every subscriber to have everything, or to have ended.
        let timeout = Duration::from_secs(args.timeout);
        let timed_out = tokio::time::timeout(timeout, futures_util::future::join_all(tasks))
            .await
            .is_err();
        let now = Instant::now();
        let cpu_total = cpu::process() - cpu0;
        let mut cpu_threads: Vec<(String, f64)> = cpu::by_thread_group()
            .into_iter()
            .map(|(k, v)| {
                let before = cpu_threads0.get(&k).copied().unwrap_or(0.0);
                (k, v - before)
            })
            .filter(|(_, v)| *v >= 0.01)
            .map(|(k, v)| (thread_label(&k), v))
            .collect();
        cpu_threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        let counts: Vec<u64> = stats
            .iter()
            .map(|s| s.received.load(Ordering::Relaxed))
            .collect();
        let last_finish = stats
            .iter()
            .map(|s| {
                s.finished
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or(now)
            })
            .max()
            .unwrap_or(now);
        let wall = last_finish.saturating_duration_since(write_started);
        let total: u64 = counts.iter().sum();
        let expected = n * args.subscribers as u64;
        let loss = expected.saturating_sub(total);
        let resyncs: u64 = stats
            .iter()
            .map(|s| s.resyncs.load(Ordering::Relaxed))
            .sum();
        let resynced_subscribers = stats
            .iter()
            .filter(|s| s.resyncs.load(Ordering::Relaxed) > 0)
            .count();
        let out_of_order: u64 = stats
            .iter()
            .map(|s| s.out_of_order.load(Ordering::Relaxed))
            .sum();
        let mut endings = std::collections::BTreeMap::<String, u64>::new();
        for s in &stats {
            let e = if s.done.load(Ordering::Acquire) {
                s.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
            } else {
                "timed out".into()
            };
            *endings.entry(e).or_default() += 1;
        }
        let min = counts.iter().copied().min().unwrap_or(0);
        let max = counts.iter().copied().max().unwrap_or(0);
        let stats_now = handles.journal.stats()?;

        let _ = stop_tx.send(());
        let _ = server.await;
        journal.close()?;

        println!(
            "- subscriber buffer {buffer} records{}",
            if buffer == DAEMON_SUBSCRIBER_BUFFER {
                " (berthd's default)"
            } else {
                ""
            }
        );
        println!(
            "    {} subscribers connected in {:.1} ms",
            args.subscribers,
            ms(connect_time)
        );
        println!(
            "    wrote {} events with {} writer tasks x {} event(s) per append in {:.0} ms = {:.0} events/s",
            thousands(n),
            args.writers.max(1),
            batch,
            ms(write_time),
            per_sec(n, write_time)
        );
        println!(
            "    delivered {} of {} messages in {:.0} ms from the first write = {:.0} messages/s ({:.0} events/s per subscriber)",
            thousands(total),
            thousands(expected),
            ms(wall),
            per_sec(total, wall),
            per_sec(total, wall) / args.subscribers.max(1) as f64,
        );
        println!(
            "    per subscriber: min {} max {}; resyncs {} ({} subscribers); out of order {}; loss {}{}",
            thousands(min),
            thousands(max),
            resyncs,
            resynced_subscribers,
            out_of_order,
            thousands(loss),
            if timed_out { " (TIMED OUT)" } else { "" }
        );
        println!(
            "    CPU from the first write to the end: {:.1} s ({:.0}% of one core over {:.1} s); by thread: {}",
            cpu_total,
            100.0 * cpu_total / now.saturating_duration_since(write_started).as_secs_f64().max(1e-9),
            now.saturating_duration_since(write_started).as_secs_f64(),
            cpu_threads
                .iter()
                .map(|(k, v)| format!("{k} {v:.1} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "    endings: {}",
            endings
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let json = json!({
            "subscriber_buffer": buffer,
            "events": n,
            "subscribers": args.subscribers,
            "writers": args.writers.max(1),
            "events_per_append": batch,
            "resume_after_resync": args.resume,
            "connect_ms": r2(ms(connect_time)),
            "write_ms": r2(ms(write_time)),
            "write_events_per_s": r2(per_sec(n, write_time)),
            "wall_ms": r2(ms(wall)),
            "delivered": total,
            "expected": expected,
            "delivered_per_s": r2(per_sec(total, wall)),
            "min_received": min,
            "max_received": max,
            "resyncs": resyncs,
            "resynced_subscribers": resynced_subscribers,
            "out_of_order": out_of_order,
            "loss": loss,
            "timed_out": timed_out,
            "endings": endings,
            "journal_last_seq": stats_now.last_seq,
            "cpu_s": {
                "process": r2(cpu_total),
                "threads": cpu_threads.iter().map(|(k, v)| (k.clone(), json!(r2(*v)))).collect::<serde_json::Map<_, _>>(),
            },
        });
        Ok(Outcome { json, loss })
    })
}

/// Runs the benchmark.
pub fn run(args: Args) -> anyhow::Result<()> {
    let load_start = crate::common::load_average();
    println!("{}", crate::common::machine());
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .thread_name("bench-sse-client")
        .enable_all()
        .build()?;
    println!(
        "fanout: {} events through the journal writer to {} SSE subscribers over the unix socket \
         (API workers {}, subscriber runtime threads {}, {})",
        thousands(args.events),
        args.subscribers,
        args.workers,
        args.client_threads,
        if args.resume {
            "subscribers resume with Last-Event-ID after a resync"
        } else {
            "a subscriber told to resync stops there"
        }
    );
    let mut runs = Vec::new();
    let mut escalated = false;
    if args.buffer.is_empty() {
        let first = run_one(&args, DAEMON_SUBSCRIBER_BUFFER, clients.handle())?;
        let lost = first.loss > 0;
        runs.push(first.json);
        if lost {
            let bigger = usize::try_from(args.events)
                .unwrap_or(usize::MAX)
                .saturating_add(1)
                .next_power_of_two()
                .max(DAEMON_SUBSCRIBER_BUFFER * 2);
            println!(
                "  loss at berthd's default buffer: running again with a buffer of {bigger} records (> --events)"
            );
            escalated = true;
            runs.push(run_one(&args, bigger, clients.handle())?.json);
        }
    } else {
        for &b in &args.buffer {
            runs.push(run_one(&args, b.max(1), clients.handle())?.json);
        }
    }
    let json = json!({
        "bench": "fanout",
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "load_start": load_start,
        "load_end": crate::common::load_average(),
        "events": args.events,
        "subscribers": args.subscribers,
        "default_buffer": DAEMON_SUBSCRIBER_BUFFER,
        "reran_with_larger_buffer_after_loss": escalated,
        "runs": runs,
    });
    println!("{json}");
    drop(clients);
    Ok(())
}
