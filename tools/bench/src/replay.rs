//! `replay`: recovery time.
//!
//! For each N: build a journal of N realistic events (large batches straight on the
//! journal), then time `Journal::open` + `berth_actors::recovery::recover` in a fresh
//! child process (this binary, re-executed with the hidden `replay-child` subcommand,
//! so nothing is cached in-process):
//!
//! - (a) from empty: no checkpoint, every event replayed;
//! - (c) from a checkpoint at N-1000: 1000 events replayed;
//! - (b) from a checkpoint at the tip: nothing replayed.
//!
//! The checkpoints are taken with the state that replay produces. With `--drop-caches`
//! (root only) the page cache is dropped before every child run ("cold"); otherwise the
//! journal's files are in the page cache ("warm"). A profile child then splits the
//! from-empty time into its parts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use berth_actors::recovery::recover;
use berth_engine::{Event, State};
use berth_journal::{codec, Journal, OpenOptions, Record};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use crate::common::{created, deleted, draft, median, ms, per_sec, r2, thousands};

/// Records per `append_batch` while building.
const BUILD_BATCH: usize = 10_000;
/// Namespaces alive at any time in the built journal (each create beyond this many is
/// followed by the delete of the oldest), so the state, and the checkpoint, stay the size
/// of a real installation rather than growing with the journal.
const LIVE_NAMESPACES: u64 = 1000;
/// How far behind the tip checkpoint (c) is.
const BEHIND: u64 = 1000;

/// Options of `replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Journal sizes to measure, in events
    #[arg(long, value_delimiter = ',', default_values_t = vec![100_000, 1_000_000])]
    events: Vec<u64>,
    /// Drop the page cache (`echo 3 > /proc/sys/vm/drop_caches`, root only) before every
    /// measured run
    #[arg(long)]
    drop_caches: bool,
    /// Measured runs per case (the median is reported)
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Skip the profile (the breakdown of the from-empty time)
    #[arg(long)]
    no_profile: bool,
    /// sled page cache in MiB (berthd's `journal.cache_mb`, default 64)
    #[arg(long, default_value_t = 64)]
    cache_mb: u64,
}

/// Options of the hidden `replay-child`.
#[derive(Debug, clap::Args)]
pub struct ChildArgs {
    /// The journal directory.
    #[arg(long)]
    dir: PathBuf,
    /// Before the timed recovery, break the from-empty replay into its parts.
    #[arg(long)]
    profile: bool,
    /// sled cache in MiB.
    #[arg(long, default_value_t = 64)]
    cache_mb: u64,
}

/// berthd's defaults (131072-record subscriber buffers), with the sled cache given.
fn options(cache_mb: u64) -> OpenOptions {
    OpenOptions {
        cache_bytes: cache_mb * 1024 * 1024,
        subscriber_buffer: 131_072,
        repair: true,
    }
}

/// The `i`-th event (0-based) of the built journal: the genesis `default` namespace, then
/// creates of `ns-<j>`, each past the first [`LIVE_NAMESPACES`] followed by the delete
/// of `ns-<j - LIVE_NAMESPACES>`.
fn built_event(i: u64, at: DateTime<Utc>) -> Event {
    if i == 0 {
        return created("default", 0, at);
    }
    let k = i - 1;
    if k < LIVE_NAMESPACES {
        return created(&format!("ns-{k}"), usize::try_from(k).unwrap_or(0), at);
    }
    let m = k - LIVE_NAMESPACES;
    let j = LIVE_NAMESPACES + m / 2;
    if m.is_multiple_of(2) {
        created(&format!("ns-{j}"), usize::try_from(j).unwrap_or(0), at)
    } else {
        deleted(&format!("ns-{}", j - LIVE_NAMESPACES))
    }
}

/// Builds a journal of `n` events in `dir`; returns (time, bytes on disk).
fn build(dir: &Path, n: u64, cache_mb: u64) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let (journal, _) = Journal::open(dir, options(cache_mb))?;
    let t0 = Utc
        .timestamp_opt(1_795_000_000, 0)
        .single()
        .context("base time")?;
    let mut i = 0u64;
    while i < n {
        let end = (i + BUILD_BATCH as u64).min(n);
        let drafts = (i..end)
            .map(|k| {
                let at = t0 + chrono::Duration::microseconds(i64::try_from(k).unwrap_or(0));
                draft(&built_event(k, at), at)
            })
            .collect();
        journal.append_batch(drafts)?;
        i = end;
    }
    let size = journal.stats()?.size_on_disk;
    journal.close()?;
    drop(journal);
    Ok((started.elapsed(), size))
}

/// Replays the journal in `dir` up to `upto` and checkpoints the resulting state there.
fn checkpoint_at(dir: &Path, upto: u64, cache_mb: u64) -> anyhow::Result<usize> {
    let (journal, open) = Journal::open(dir, options(cache_mb))?;
    let state = if upto == journal.last_seq() {
        // The state recovery produces (from whatever checkpoint is there).
        recover(&journal, open)?.0
    } else {
        let mut state = State::new();
        for r in journal.iter_from(1) {
            let r = r?;
            if r.seq > upto {
                break;
            }
            let e = Event::decode(&r.topic, r.schema, &r.payload, r.at)?;
            state.apply_at(r.seq, &e);
        }
        state
    };
    if state.seq != upto {
        bail!("replay reached {} instead of {upto}", state.seq);
    }
    let bytes = state.to_checkpoint();
    let len = bytes.len();
    journal.checkpoint(upto, bytes)?;
    journal.close()?;
    Ok(len)
}

fn drop_caches() -> anyhow::Result<()> {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n")
        .context("writing /proc/sys/vm/drop_caches (needs root and a writable /proc/sys)")
}

/// Runs a child and returns the JSON object on its last stdout line.
fn run_child(dir: &Path, cache_mb: u64, profile: bool, cold: bool) -> anyhow::Result<Value> {
    if cold {
        drop_caches()?;
    }
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("replay-child")
        .arg("--dir")
        .arg(dir)
        .arg("--cache-mb")
        .arg(cache_mb.to_string());
    if profile {
        cmd.arg("--profile");
    }
    let out = cmd.output().context("running the replay child")?;
    if !out.status.success() {
        bail!(
            "replay child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8(out.stdout)?;
    let line = stdout
        .lines()
        .last()
        .context("replay child printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("replay child printed {line:?}"))
}

struct Case {
    runs: Vec<Value>,
}

impl Case {
    fn med(&self, field: &str) -> f64 {
        let v: Vec<f64> = self.runs.iter().filter_map(|r| r[field].as_f64()).collect();
        median(&v)
    }
}

fn measure(name: &'static str, dir: &Path, args: &Args) -> anyhow::Result<Case> {
    let mut runs = Vec::new();
    for _ in 0..args.runs.max(1) {
        runs.push(run_child(dir, args.cache_mb, false, args.drop_caches)?);
    }
    let case = Case { runs };
    let first = &case.runs[0];
    println!(
        "    {:<28} open {:>8.1} ms + recover {:>8.1} ms = {:>8.1} ms (median of {}; runs: {}); replayed {}, verified at open {}",
        name,
        case.med("open_ms"),
        case.med("recover_ms"),
        case.med("total_ms"),
        case.runs.len(),
        case.runs
            .iter()
            .map(|r| format!("{:.0}", r["total_ms"].as_f64().unwrap_or(0.0)))
            .collect::<Vec<_>>()
            .join("/"),
        thousands(first["replayed"].as_u64().unwrap_or(0)),
        thousands(first["verified_at_open"].as_u64().unwrap_or(0)),
    );
    Ok(case)
}

fn case_json(c: &Case) -> Value {
    json!({
        "open_ms": r2(c.med("open_ms")),
        "recover_ms": r2(c.med("recover_ms")),
        "total_ms": r2(c.med("total_ms")),
        "replayed": c.runs[0]["replayed"],
        "verified_at_open": c.runs[0]["verified_at_open"],
        "checkpoint_seq": c.runs[0]["checkpoint_seq"],
        "runs_total_ms": c.runs.iter().map(|r| r["total_ms"].clone()).collect::<Vec<_>>(),
    })
}

/// Runs the benchmark.
pub fn run(args: Args) -> anyhow::Result<()> {
    let load_start = crate::common::load_average();
    println!("{}", crate::common::machine());
    let cache = if args.drop_caches {
        drop_caches().context("--drop-caches")?;
        "cold: page cache dropped before every run"
    } else {
        "warm: journal files in the page cache"
    };
    println!(
        "replay: Journal::open + recovery::recover in a fresh process, {cache}; OpenOptions as berthd, sled cache {} MiB{}",
        args.cache_mb,
        if args.cache_mb == 64 { " (berthd's default)" } else { "" }
    );
    let mut results = Vec::new();
    for &n in &args.events {
        if n <= BEHIND {
            bail!("--events must be above {BEHIND}");
        }
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("journal");
        let (took, size) = build(&dir, n, args.cache_mb)?;
        println!(
            "- {} events: built in {:.1} s ({:.0} events/s), {:.1} MiB on disk",
            thousands(n),
            took.as_secs_f64(),
            per_sec(n, took),
            bytes_mib(size),
        );
        let empty = measure("(a) from empty", &dir, &args)?;
        let profile = if args.no_profile {
            None
        } else {
            let p = run_child(&dir, args.cache_mb, true, args.drop_caches)?;
            print_profile(&p);
            Some(p)
        };
        let cp_behind = checkpoint_at(&dir, n - BEHIND, args.cache_mb)?;
        let behind = measure("(c) checkpoint at N-1000", &dir, &args)?;
        let cp_tip = checkpoint_at(&dir, n, args.cache_mb)?;
        let tip = measure("(b) checkpoint at the tip", &dir, &args)?;
        println!("    checkpoint size: {cp_tip} bytes at the tip, {cp_behind} bytes at N-1000");
        if n == 1_000_000 {
            let cold = empty.med("total_ms");
            let warm = tip.med("total_ms");
            println!(
                "    targets (1M): from empty <= 2000 ms: {:.0} ms -> {}; from a checkpoint <= 200 ms: {:.0} ms (tip), {:.0} ms (N-1000) -> {}",
                cold,
                if cold <= 2000.0 { "MET" } else { "MISSED" },
                warm,
                behind.med("total_ms"),
                if warm <= 200.0 && behind.med("total_ms") <= 200.0 { "MET" } else { "MISSED" },
            );
        }
        results.push(json!({
            "events": n,
            "bytes_on_disk": size,
            "build_s": r2(took.as_secs_f64()),
            "from_empty": case_json(&empty),
            "from_checkpoint_tip": case_json(&tip),
            "from_checkpoint_minus_1000": case_json(&behind),
            "checkpoint_bytes": cp_tip,
            "profile_from_empty": profile,
        }));
    }
    let json = json!({
        "bench": "replay",
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "load_start": load_start,
        "load_end": crate::common::load_average(),
        "cache": if args.drop_caches { "cold" } else { "warm" },
        "sled_cache_mb": args.cache_mb,
        "runs_per_case": args.runs.max(1),
        "results": results,
    });
    println!("{json}");
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn bytes_mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn print_profile(p: &Value) {
    let f = |k: &str| p[k].as_f64().unwrap_or(0.0);
    println!("    profile of (a), one run in a fresh process, each step timed on its own:");
    println!(
        "      sled open ................................ {:>8.1} ms",
        f("sled_open_ms")
    );
    println!(
        "      sled scan of the events tree, first ...... {:>8.1} ms ({} sled values (frames), {:.1} MiB)",
        f("first_scan_ms"),
        thousands(p["sled_values"].as_u64().unwrap_or(0)),
        f("value_mib")
    );
    println!(
        "      sled scan again (values kept in memory) .. {:>8.1} ms",
        f("second_scan_ms")
    );
    println!("      on those values in memory, streaming as recovery does (cumulative passes):");
    let row = |label: &str, key: &str| println!("        {label:<42} {:>8.1} ms", f(key));
    row("crc32 check", "crc_ms");
    row(
        "crc32 + rmp decode of the Record envelope",
        "record_decode_ms",
    );
    row("  + Event::decode of the payload", "event_decode_ms");
    row("  + State::apply_at", "apply_ms");
    row(
        "= the whole replay on in-memory values",
        "in_memory_replay_ms",
    );
    println!(
        "      then: Journal::open {:.1} ms (sled open + a verifying pass: scan + crc + envelope decode) + recover {:.1} ms (a second pass: scan + crc + envelope decode + Event::decode + apply); Journal::iter_from(1) alone afterwards {:.1} ms",
        f("open_ms"),
        f("recover_ms"),
        f("iter_from_ms")
    );
}

/// The hidden child: one timed recovery (or the profile), as one JSON line.
pub fn child(args: ChildArgs) -> anyhow::Result<()> {
    let mut out = serde_json::Map::new();
    let opts = options(args.cache_mb);
    if args.profile {
        profile(&args.dir, opts.cache_bytes, &mut out)?;
    }
    // What berthd does: open and replay in one pass.
    let t0 = Instant::now();
    let recovered = berth_actors::open_and_recover(&args.dir, opts)?;
    let t1 = t0;
    let verified = recovered.report.open.verified_tail;
    let (journal, state, report) = (recovered.journal, recovered.state, recovered.report);
    let t2 = Instant::now();
    out.insert("open_ms".into(), json!(r2(ms(t1 - t0))));
    out.insert("recover_ms".into(), json!(r2(ms(t2 - t1))));
    out.insert("total_ms".into(), json!(r2(ms(t2 - t0))));
    out.insert("replayed".into(), json!(report.replayed));
    out.insert("verified_at_open".into(), json!(verified));
    out.insert("checkpoint_seq".into(), json!(report.checkpoint_seq));
    out.insert("seq".into(), json!(state.seq));
    out.insert("namespaces".into(), json!(state.namespaces.len()));
    if args.profile {
        // The journal's own iterator (scan + checksum + envelope decode), once more.
        let t = Instant::now();
        let mut n = 0u64;
        for r in journal.iter_from(1) {
            r?;
            n += 1;
        }
        out.insert("iter_from_ms".into(), json!(r2(ms(t.elapsed()))));
        out.insert("iter_from_records".into(), json!(n));
    }
    drop(journal);
    println!("{}", Value::Object(out));
    Ok(())
}

/// Splits the from-empty replay into its steps: the raw sled scan (twice: with a cold
/// and then a warmed sled cache), then, on the values held in memory, the checksum, the
/// envelope decode, the event decode and the fold, each timed on its own.
fn profile(
    dir: &Path,
    cache_bytes: u64,
    out: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes)
        .mode(sled::Mode::LowSpace)
        .flush_every_ms(None)
        .open()?;
    let events = db.open_tree("events")?;
    out.insert("sled_open_ms".into(), json!(r2(ms(t.elapsed()))));
    let t = Instant::now();
    let mut bytes = 0u64;
    for item in events.iter() {
        bytes += item?.1.len() as u64;
    }
    out.insert("first_scan_ms".into(), json!(r2(ms(t.elapsed()))));
    let t = Instant::now();
    let raw: Vec<(sled::IVec, sled::IVec)> = events.iter().collect::<Result<_, _>>()?;
    out.insert("second_scan_ms".into(), json!(r2(ms(t.elapsed()))));
    // In-memory passes, each doing one more step than the previous, streaming as
    // recovery does (each record dropped after use); differences are the step costs.
    let pass = |level: u8| -> anyhow::Result<(Duration, u64)> {
        let t = Instant::now();
        let mut state = State::new();
        let mut applied = 0u64;
        for (k, v) in &raw {
            // Each value is a frame of records (or one record of format 1).
            let mut frame = codec::frame(k, v).map_err(anyhow::Error::msg)?;
            while let Some((_, body)) = frame.next_entry(v) {
                let body = body.map_err(anyhow::Error::msg)?;
                if level == 0 {
                    continue;
                }
                let r: Record = codec::decode_body(body).map_err(anyhow::Error::msg)?;
                if level >= 2 {
                    let e = Event::decode(&r.topic, r.schema, &r.payload, r.at)?;
                    if level >= 3 {
                        state.apply_at(r.seq, &e);
                        applied += 1;
                    }
                }
            }
        }
        Ok((t.elapsed(), applied))
    };
    let (crc, _) = pass(0)?;
    let (rec, _) = pass(1)?;
    let (ev, _) = pass(2)?;
    let (apply, _) = pass(3)?;
    let d = |a: Duration, b: Duration| r2(ms(a.saturating_sub(b)));
    out.insert("crc_ms".into(), json!(r2(ms(crc))));
    out.insert("record_decode_ms".into(), json!(d(rec, Duration::ZERO)));
    out.insert("event_decode_ms".into(), json!(d(ev, rec)));
    out.insert("apply_ms".into(), json!(d(apply, ev)));
    out.insert("in_memory_replay_ms".into(), json!(r2(ms(apply))));
    out.insert("sled_values".into(), json!(raw.len()));
    out.insert("value_mib".into(), json!(r2(bytes_mib(bytes))));
    drop((raw, events, db));
    Ok(())
}
