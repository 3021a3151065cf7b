//! `append`: durable append throughput.
//!
//! Baseline: one thread calls `Journal::append_batch` with one event per call, so every
//! event pays its own fsync. Then the group-commit writer (`WriterHandle`, with the
//! daemon's default `WriterConfig`) with 1, 8 and 64 threads, each calling
//! `append_blocking(vec![one event])` in a loop; then with 1, 8 and 64 tasks on one
//! actix arbiter, each awaiting `append(vec![one event])` in a loop (berthd runs all its
//! actors on the actix `System` arbiter, so this is how its appends arrive). Each phase
//! has a fresh journal.
//!
//! Group sizes, counted two ways: the journal's own counter of durable commits (one
//! flush + fdatasync each, `JournalStats::batches_since_open`) gives events per fsync;
//! and, without help from the library, the writer stamps every record of one group with
//! the same `at` (one `Utc::now()` per group), so runs of equal `at` in the journal are
//! the groups it took at once (with the largest). The two agree when each group is one
//! commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_actors::{SharedState, WriterConfig, WriterHandle};
use berth_engine::State;
use berth_journal::{Journal, OpenOptions};
use chrono::Utc;
use serde_json::json;

use crate::common::{cpu, draft, ms, per_sec, percentile, r2, thousands, writer_event};

/// Options of `append`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Length of each phase in seconds [default: 5 unless --events is given]
    #[arg(long)]
    seconds: Option<f64>,
    /// Events per phase (each phase stops at whichever of --seconds and --events
    /// comes first)
    #[arg(long)]
    events: Option<u64>,
    /// Concurrent writer threads of the group-commit phases
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 8, 64])]
    writers: Vec<usize>,
    /// Skip the last phase (one thread, `append_batch` with as many events per call as
    /// the most writers: what group commit could reach without its thread hand-offs)
    #[arg(long)]
    no_ceiling: bool,
    /// Writers of the phases where they are tasks on one actix arbiter (as berthd's
    /// actors are), calling `WriterHandle::append(..).await`
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 8, 64])]
    actors: Vec<usize>,
}

/// When a phase stops: a deadline, an event budget, or both.
struct Limit {
    duration: Option<Duration>,
    events: Option<u64>,
    claimed: AtomicU64,
}

impl Limit {
    /// Claims one more event; false when the phase is over.
    fn claim(&self, started: Instant) -> bool {
        self.claim_n(started, 1) == 1
    }

    /// Claims up to `n` more events; returns how many were granted (0: phase over).
    fn claim_n(&self, started: Instant, n: u64) -> u64 {
        if self.duration.is_some_and(|d| started.elapsed() >= d) {
            return 0;
        }
        let i = self.claimed.fetch_add(n, Ordering::Relaxed);
        match self.events {
            Some(limit) => limit.saturating_sub(i).min(n),
            None => n,
        }
    }
}

/// Where the CPU went during a phase, in seconds.
#[derive(Default)]
struct CpuUse {
    process: f64,
    writer_thread: f64,
    checkpoint_thread: f64,
}

struct Phase {
    name: String,
    mode: &'static str,
    cpu: CpuUse,
    writers: usize,
    events: u64,
    elapsed: Duration,
    /// Append latencies in microseconds, sorted.
    latencies_us: Vec<u64>,
    /// Durable commits (one flush + fdatasync each).
    fsyncs: u64,
    /// Groups the writer took at once (runs of equal `at`), and the largest.
    groups: u64,
    max_group: u64,
}

impl Phase {
    fn eps(&self) -> f64 {
        per_sec(self.events, self.elapsed)
    }

    /// Events per group the writer took.
    fn mean_group(&self) -> f64 {
        self.events_per(self.groups)
    }

    /// Events per durable commit.
    fn per_fsync(&self) -> f64 {
        self.events_per(self.fsyncs)
    }

    #[allow(clippy::cast_precision_loss)]
    fn events_per(&self, n: u64) -> f64 {
        if n == 0 {
            0.0
        } else {
            self.events as f64 / n as f64
        }
    }
}

fn open_fresh(dir: &tempfile::TempDir) -> anyhow::Result<Journal> {
    let (journal, _) = Journal::open(
        dir.path().join("journal"),
        OpenOptions {
            // berthd's defaults.
            subscriber_buffer: 131_072,
            ..OpenOptions::default()
        },
    )
    .context("opening a fresh journal")?;
    Ok(journal)
}

/// Counts the group commits in a journal: runs of records with the same `at`.
fn count_groups(journal: &Journal) -> anyhow::Result<(u64, u64)> {
    let mut groups = 0u64;
    let mut max_group = 0u64;
    let mut current = 0u64;
    let mut last_at = None;
    for r in journal.iter_from(1) {
        let r = r?;
        if Some(r.at) == last_at {
            current += 1;
        } else {
            if current > 0 {
                groups += 1;
                max_group = max_group.max(current);
            }
            current = 1;
            last_at = Some(r.at);
        }
    }
    if current > 0 {
        groups += 1;
        max_group = max_group.max(current);
    }
    Ok((groups, max_group))
}

/// One thread calling `Journal::append_batch` directly with `per_call` events per call:
/// `per_call == 1` is the one-fsync-per-event baseline; a larger `per_call` is the
/// ceiling of group commit at that group size (the journal's cost alone, without the
/// writer thread, channels and wake-ups).
fn direct(limit: &Limit, per_call: usize) -> anyhow::Result<(Phase, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let journal = open_fresh(&dir)?;
    let mut latencies = Vec::new();
    let cpu0 = cpu::process();
    let started = Instant::now();
    let mut i = 0u64;
    loop {
        let n = limit.claim_n(started, per_call as u64);
        if n == 0 {
            break;
        }
        let at = Utc::now();
        let drafts = (i..i + n).map(|k| draft(&writer_event(0, k), at)).collect();
        let t = Instant::now();
        journal.append_batch(drafts)?;
        latencies.push(micros_since(t));
        i += n;
    }
    let elapsed = started.elapsed();
    let cpu = CpuUse {
        process: cpu::process() - cpu0,
        ..CpuUse::default()
    };
    latencies.sort_unstable();
    let (groups, max_group) = count_groups(&journal)?;
    let fsyncs = journal.stats()?.batches_since_open;
    journal.close()?;
    Ok((
        Phase {
            name: if per_call == 1 {
                "one fsync per event (Journal::append_batch, 1 event per call)".into()
            } else {
                format!("Journal::append_batch, {per_call} events per call, 1 thread (ceiling of group commit at that group size; latency is per call)")
            },
            mode: if per_call == 1 {
                "fsync_per_event"
            } else {
                "direct_batch"
            },
            cpu,
            writers: 1,
            events: i,
            elapsed,
            latencies_us: latencies,
            fsyncs,
            groups,
            max_group,
        },
        dir,
    ))
}

/// A fresh journal with the daemon's writer over it (default `WriterConfig`).
fn fresh_writer() -> anyhow::Result<(tempfile::TempDir, Journal, WriterHandle)> {
    let dir = tempfile::tempdir()?;
    let journal = open_fresh(&dir)?;
    let handle = WriterHandle::spawn(
        journal.clone(),
        SharedState::new(State::new()),
        WriterConfig::default(),
    );
    Ok((dir, journal, handle))
}

/// Microseconds since `t`.
fn micros_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A phase's name: `how` the writers append, and how many there are.
fn phase_name(how: &str, writers: usize, what: &str) -> String {
    format!(
        "group commit ({how}), {writers} writer{}{what}",
        if writers == 1 { "" } else { "s" }
    )
}

fn group_commit(writers: usize, limit: Arc<Limit>) -> anyhow::Result<(Phase, tempfile::TempDir)> {
    let (dir, journal, handle) = fresh_writer()?;
    let barrier = Arc::new(Barrier::new(writers + 1));
    let mut threads = Vec::with_capacity(writers);
    for w in 0..writers {
        let handle = handle.clone();
        let barrier = barrier.clone();
        let limit = limit.clone();
        threads.push(
            thread::Builder::new()
                .name(format!("bench-writer-{w}"))
                .spawn(move || -> anyhow::Result<Vec<u64>> {
                    let mut latencies = Vec::new();
                    barrier.wait();
                    let started = Instant::now();
                    let mut i = 0u64;
                    while limit.claim(started) {
                        let e = writer_event(w, i);
                        let t = Instant::now();
                        handle
                            .append_blocking(vec![e])
                            .map_err(|e| anyhow::anyhow!("append failed: {e}"))?;
                        latencies.push(micros_since(t));
                        i += 1;
                    }
                    Ok(latencies)
                })?,
        );
    }
    let cpu0 = cpu::process();
    barrier.wait();
    let started = Instant::now();
    let mut latencies = Vec::new();
    for t in threads {
        let l = t
            .join()
            .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
        latencies.extend(l);
    }
    let name = phase_name("WriterHandle::append_blocking", writers, "");
    let end = PhaseEnd {
        started,
        cpu0,
        journal,
        handle,
        latencies,
    };
    Ok((end.finish(name, "group_commit", writers)?, dir))
}

/// What a group-commit phase hands over when its writers are done.
struct PhaseEnd {
    started: Instant,
    cpu0: f64,
    journal: Journal,
    handle: WriterHandle,
    latencies: Vec<u64>,
}

impl PhaseEnd {
    fn finish(self, name: String, mode: &'static str, writers: usize) -> anyhow::Result<Phase> {
        let elapsed = self.started.elapsed();
        // The writer and checkpoint threads are new in this phase: their totals are its.
        let cpu = CpuUse {
            process: cpu::process() - self.cpu0,
            writer_thread: cpu::threads("berth-journal-w"),
            checkpoint_thread: cpu::threads("berth-checkpoin"),
        };
        drop(self.handle); // the writer thread ends once every handle is gone
        let mut latencies = self.latencies;
        latencies.sort_unstable();
        let (groups, max_group) = count_groups(&self.journal)?;
        Ok(Phase {
            name,
            mode,
            cpu,
            writers,
            events: latencies.len() as u64,
            elapsed,
            latencies_us: latencies,
            fsyncs: self.journal.stats()?.batches_since_open,
            groups,
            max_group,
        })
    }
}

/// Group commit as berthd's actors use it: `writers` tasks on one actix arbiter (berthd
/// runs all its actors on the actix `System` arbiter, one thread), each awaiting
/// `WriterHandle::append(vec![one event])` in a loop.
fn group_commit_actors(
    writers: usize,
    limit: Arc<Limit>,
) -> anyhow::Result<(Phase, tempfile::TempDir)> {
    let (dir, journal, handle) = fresh_writer()?;
    let cpu0 = cpu::process();
    let started = Instant::now();
    let latencies = actix::System::new().block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let handle = handle.clone();
                let limit = limit.clone();
                actix::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut i = 0u64;
                    while limit.claim(started) {
                        let e = writer_event(w, i);
                        let t = Instant::now();
                        handle
                            .append(vec![e])
                            .await
                            .map_err(|e| anyhow::anyhow!("append failed: {e}"))?;
                        latencies.push(micros_since(t));
                        i += 1;
                    }
                    anyhow::Ok(latencies)
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(
                t.await
                    .map_err(|_| anyhow::anyhow!("a writer task panicked"))??,
            );
        }
        anyhow::Ok(all)
    })?;
    let name = phase_name(
        "WriterHandle::append().await",
        writers,
        " as tasks on one actix arbiter (berthd's actors)",
    );
    let end = PhaseEnd {
        started,
        cpu0,
        journal,
        handle,
        latencies,
    };
    Ok((end.finish(name, "group_commit_actors", writers)?, dir))
}

/// The disk's own flush cost: 4 KiB written then `fdatasync`, repeated for up to a
/// second (at most 1000 times); returns sorted latencies in microseconds.
fn raw_fdatasync() -> anyhow::Result<Vec<u64>> {
    use std::io::Write;
    let dir = tempfile::tempdir()?;
    let mut f = std::fs::File::create(dir.path().join("probe"))?;
    let block = [0x5au8; 4096];
    let started = Instant::now();
    let mut lat = Vec::new();
    while lat.len() < 1000 && started.elapsed() < Duration::from_secs(1) {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        lat.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    lat.sort_unstable();
    Ok(lat)
}

/// Runs the benchmark.
pub fn run(args: Args) -> anyhow::Result<()> {
    let load_start = crate::common::load_average();
    println!("{}", crate::common::machine());
    let seconds = match (args.seconds, args.events) {
        (Some(s), _) => Some(s),
        (None, Some(_)) => None,
        (None, None) => Some(5.0),
    };
    let duration = seconds.map(Duration::from_secs_f64);
    let new_limit = || {
        Arc::new(Limit {
            duration,
            events: args.events,
            claimed: AtomicU64::new(0),
        })
    };
    println!(
        "append: durable appends, each phase on a fresh journal, {} (WriterConfig::default(): max_batch 4096, checkpoint_every 10000)",
        match (seconds, args.events) {
            (Some(s), Some(n)) => format!("{s} s or {n} events per phase, whichever first"),
            (Some(s), None) => format!("{s} s per phase"),
            (None, Some(n)) => format!("{n} events per phase"),
            (None, None) => unreachable!(),
        }
    );
    let probe = raw_fdatasync()?;
    println!(
        "disk: 4 KiB write + fdatasync p50 {} us, p99 {} us ({} samples); note: sled 0.34's flush uses sync_file_range on Linux, not fsync",
        percentile(&probe, 50.0),
        percentile(&probe, 99.0),
        probe.len()
    );
    // Keep every directory until the end: writer threads of finished phases may still be
    // shutting down their journal handles.
    let mut dirs = Vec::new();
    let mut phases = Vec::new();
    let (p, d) = direct(&new_limit(), 1)?;
    report(&p, None);
    let base = p.eps();
    phases.push(p);
    dirs.push(d);
    for &w in &args.writers {
        let (p, d) = group_commit(w.max(1), new_limit())?;
        report(&p, Some(base));
        phases.push(p);
        dirs.push(d);
    }
    for &w in &args.actors {
        let (p, d) = group_commit_actors(w.max(1), new_limit())?;
        report(&p, Some(base));
        phases.push(p);
        dirs.push(d);
    }
    let widest = args.writers.iter().copied().max().unwrap_or(1);
    if widest > 1 && !args.no_ceiling {
        let (p, d) = direct(&new_limit(), widest)?;
        report(&p, Some(base));
        phases.push(p);
        dirs.push(d);
    }
    let ratio = |p: &Phase| if base > 0.0 { p.eps() / base } else { 0.0 };
    if let Some(p64) = phases
        .iter()
        .find(|p| p.mode == "group_commit" && p.writers == 64)
    {
        let r = ratio(p64);
        println!(
            "target: 64 writers >= 20x the one-fsync-per-event baseline: {:.1}x -> {}",
            r,
            if r >= 20.0 { "MET" } else { "MISSED" }
        );
    }
    let json = json!({
        "bench": "append",
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "load_start": load_start,
        "load_end": crate::common::load_average(),
        "seconds_per_phase": seconds,
        "events_per_phase": args.events,
        "baseline_events_per_s": r2(base),
        "disk_fdatasync_us": {
            "p50": percentile(&probe, 50.0),
            "p99": percentile(&probe, 99.0),
        },
        "phases": phases.iter().map(|p| json!({
            "mode": p.mode,
            "writers": p.writers,
            "events": p.events,
            "seconds": r2(p.elapsed.as_secs_f64()),
            "events_per_s": r2(p.eps()),
            "ratio_vs_baseline": r2(ratio(p)),
            "fsyncs": p.fsyncs,
            "events_per_fsync": r2(p.per_fsync()),
            "write_groups": p.groups,
            "mean_write_group": r2(p.mean_group()),
            "max_write_group": p.max_group,
            "cpu_s": {
                "process": r2(p.cpu.process),
                "writer_thread": r2(p.cpu.writer_thread),
                "checkpoint_thread": r2(p.cpu.checkpoint_thread),
            },
            "latency_us": {
                "p50": percentile(&p.latencies_us, 50.0),
                "p99": percentile(&p.latencies_us, 99.0),
                "max": p.latencies_us.last().copied().unwrap_or(0),
            },
        })).collect::<Vec<_>>(),
    });
    println!("{json}");
    drop(dirs);
    Ok(())
}

fn report(p: &Phase, base: Option<f64>) {
    println!("- {}", p.name);
    println!(
        "    {} events in {:.2} s = {:.0} events/s{}",
        thousands(p.events),
        p.elapsed.as_secs_f64(),
        p.eps(),
        match base {
            Some(b) if b > 0.0 => format!("  ({:.1}x baseline)", p.eps() / b),
            _ => "  (baseline)".into(),
        }
    );
    println!(
        "    fsyncs: {} (mean {:.1} events per fsync); groups the writer took: {} (mean {:.1}, max {}); append latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        thousands(p.fsyncs),
        p.per_fsync(),
        thousands(p.groups),
        p.mean_group(),
        p.max_group,
        ms(Duration::from_micros(percentile(&p.latencies_us, 50.0))),
        ms(Duration::from_micros(percentile(&p.latencies_us, 99.0))),
        ms(Duration::from_micros(p.latencies_us.last().copied().unwrap_or(0))),
    );
    let wall = p.elapsed.as_secs_f64().max(1e-9);
    println!(
        "    CPU: process {:.0}% of one core (writer thread {:.0}%, checkpoint thread {:.0}%, the rest: appending threads, sled's IO threads and the kernel on their behalf)",
        100.0 * p.cpu.process / wall,
        100.0 * p.cpu.writer_thread / wall,
        100.0 * p.cpu.checkpoint_thread / wall,
    );
}
