//! Crash test: a child process (this test binary, re-executed) appends in a loop and
//! prints every acknowledged seq; the parent SIGKILLs it at a random moment, reopens the
//! journal and checks that nothing acknowledged was lost and nothing wrong was kept.
//! Rounds accumulate on one directory, so every round continues the journal. Half of
//! the child's appends go as the daemon's writer makes them: several appends written
//! together (`write_units`, some larger than a frame) and committed with one flush; each
//! of them must survive whole or not at all.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use berth_journal::Journal;
use common::{check_derived, draft_for, small_opts, Rng};

const DIR_ENV: &str = "BERTH_JOURNAL_CRASH_DIR";
const SEED_ENV: &str = "BERTH_JOURNAL_CRASH_SEED";
const ROUNDS: usize = 50;
/// Starts every line of the child's protocol (the test harness may print its own text
/// on the same line before it, e.g. `test crash_child ... `).
const MARK: &str = "@@journal@@";

/// The child's message in `line`, if any.
fn message(line: &str) -> Option<&str> {
    line.rsplit_once(MARK).map(|(_, m)| m)
}

/// The child: does nothing unless started by [`crash_and_recover`].
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let seed: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();
    let mut rng = Rng::new(seed);
    let (j, _) = Journal::open(PathBuf::from(dir), small_opts()).expect("child: open");
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{MARK}OPEN {}", j.last_seq()).unwrap();
    out.flush().unwrap();
    loop {
        let first = j.last_seq() + 1;
        let last = if rng.chance(2) {
            let n = rng.range(1, 9);
            let drafts = (first..first + n).map(draft_for).collect();
            let recs = j.append_batch(drafts).expect("child: append");
            recs.last().unwrap().seq
        } else {
            // As the daemon's writer: several appends (units) written at once, some
            // larger than a frame, then one commit. Each unit must survive whole or
            // not at all: the parent is told the units before they are written.
            let mut units = Vec::new();
            let mut plan = Vec::new();
            let mut next = first;
            for _ in 0..rng.range(1, 6) {
                let n = if rng.chance(8) {
                    rng.range(100, 300)
                } else {
                    rng.range(1, 9)
                };
                units.push((next..next + n).map(draft_for).collect::<Vec<_>>());
                plan.push(format!("{next}-{}", next + n - 1));
                next += n;
            }
            writeln!(out, "{MARK}UNITS {}", plan.join(",")).unwrap();
            out.flush().unwrap();
            let mut written = [j.write_units(units).expect("child: write")];
            j.commit(&mut written, |_| {}).expect("child: commit");
            let [written] = written;
            written.into_records().last().unwrap().seq
        };
        writeln!(out, "{MARK}ACK {last}").unwrap();
        out.flush().unwrap();
        if rng.chance(10) {
            // Like the daemon: checkpoint somewhere near the tip.
            let at = rng.range(last.saturating_sub(40).max(1), last + 1);
            j.checkpoint(at, checkpoint_data(at))
                .expect("child: checkpoint");
            writeln!(out, "{MARK}CP {at}").unwrap();
            out.flush().unwrap();
        }
    }
}

fn checkpoint_data(seq: u64) -> Vec<u8> {
    format!("state up to {seq}").into_bytes()
}

#[test]
fn crash_and_recover() {
    let seed = common::seed("crash_and_recover");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut highest_ack = 0u64;
    let mut prev_n = 0u64;
    // The highest acknowledged checkpoint: checkpoints are kept by seq, so the latest
    // one after a crash is at least this.
    let mut highest_cp = 0u64;
    let mut total_acks = 0usize;
    // Appends larger than a frame (written as several frames in one sled batch).
    let mut large_units = 0usize;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, dir.path())
            .env(SEED_ENV, rng.next_u64().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the child has the journal open, then let it run 10..150 ms.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    panic!(
                        "round {round}: child did not open the journal: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                }
            };
            if let Some(n) = message(&line).and_then(|m| m.strip_prefix("OPEN ")) {
                let opened_at: u64 = n.parse().unwrap();
                assert!(
                    opened_at >= highest_ack,
                    "round {round}: child opened at {opened_at} < acked {highest_ack}"
                );
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.range(10, 151)));
        child.kill().unwrap(); // SIGKILL on unix
        let status = child.wait().unwrap();
        reader.join().unwrap();
        let mut child_stderr = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut child_stderr);
        // Killed by us, not ended by a failure of its own (a panic exits with 101).
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "round {round}: child ended by itself: {status:?}\n{child_stderr}"
        );
        let mut units: Vec<(u64, u64)> = Vec::new();
        for line in rx.try_iter() {
            if let Some(plan) = message(&line).and_then(|m| m.strip_prefix("UNITS ")) {
                for u in plan.split(',') {
                    let (a, b) = u.split_once('-').unwrap();
                    let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
                    large_units += usize::from(b - a >= 128);
                    units.push((a, b));
                }
            }
            if let Some(n) = message(&line).and_then(|m| m.strip_prefix("CP ")) {
                highest_cp = highest_cp.max(n.parse().unwrap());
            }
            if let Some(n) = message(&line).and_then(|m| m.strip_prefix("ACK ")) {
                let n: u64 = n.parse().unwrap();
                assert!(n > highest_ack, "round {round}: acks not increasing");
                highest_ack = n;
                total_acks += 1;
            }
        }

        // Reopen and check.
        let (j, report) = Journal::open(dir.path(), small_opts()).unwrap_or_else(|e| {
            panic!("round {round}: reopen failed: {e}\nchild stderr:\n{child_stderr}")
        });
        assert_eq!(
            report.cut, None,
            "round {round}: a crash must not damage acknowledged records"
        );
        let n = j.last_seq();
        assert_eq!(report.last_seq, n);
        for &(a, b) in &units {
            assert!(
                n < a || n >= b,
                "round {round}: the journal ends at {n}, inside the append {a}..={b}"
            );
        }
        assert!(
            n >= highest_ack,
            "round {round}: journal holds 1..={n} but {highest_ack} was acknowledged"
        );
        // Every record is checked in full every few rounds; in between, the records
        // written since the previous round (and a few before) are.
        let full = round % 10 == 9 || round + 1 == ROUNDS;
        let from = if full {
            1
        } else {
            prev_n.saturating_sub(8).max(1)
        };
        let mut expect = from;
        for r in j.iter_from(from) {
            let r = r.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(r.seq, expect, "round {round}: records out of order");
            check_derived(&r);
            expect += 1;
        }
        assert_eq!(
            expect - 1,
            n,
            "round {round}: iter_from({from}) ended early"
        );
        let latest = j.latest_checkpoint().unwrap();
        assert!(
            latest.as_ref().map_or(0, |c| c.seq) >= highest_cp,
            "round {round}: acknowledged checkpoint {highest_cp} lost (latest {:?})",
            latest.as_ref().map(|c| c.seq)
        );
        if let Some(cp) = latest {
            assert!(
                cp.seq >= 1 && cp.seq <= n,
                "round {round}: checkpoint {} beyond {n}",
                cp.seq
            );
            assert_eq!(
                cp.data,
                checkpoint_data(cp.seq),
                "round {round}: checkpoint data"
            );
            assert_eq!(report.checkpoint_seq, Some(cp.seq));
        }
        if full {
            let v = j.verify().unwrap();
            assert!(v.ok(), "round {round}: {v:?}");
            assert_eq!((v.checked, v.first_seq, v.last_seq), (n, 1, n));
        }
        prev_n = n;
        // Unacknowledged records may survive; they become the base of the next round.
        highest_ack = n;
    }
    eprintln!("crash: {ROUNDS} rounds, {total_acks} acknowledged batches, {highest_ack} records");
    assert!(total_acks > 0, "the child never acknowledged anything");
    assert!(large_units > 0, "no append larger than a frame was tried");
}
