//! Helpers shared by the benchmarks: realistic events, drafts, timing and statistics.

use std::time::Duration;

use berth_engine::event::{NamespaceCreated, NamespaceDeleted};
use berth_engine::ids::{Labels, NamespaceName};
use berth_engine::Event;
use berth_journal::Draft;
use chrono::{DateTime, Utc};

/// A namespace name known to be valid.
pub fn ns(name: &str) -> NamespaceName {
    NamespaceName::parse(name).expect("benchmark namespace names are valid")
}

/// `namespace.created` with two labels (a realistic payload).
pub fn created(name: &str, team: usize, at: DateTime<Utc>) -> Event {
    let mut labels = Labels::new();
    labels.insert("berth.dev/team".into(), format!("team-{}", team % 16));
    labels.insert("berth.dev/env".into(), "production".into());
    Event::NamespaceCreated(NamespaceCreated {
        name: ns(name),
        labels,
        created_at: at,
    })
}

/// `namespace.deleted`.
pub fn deleted(name: &str) -> Event {
    Event::NamespaceDeleted(NamespaceDeleted { name: ns(name) })
}

/// The `i`-th event of writer `w`: even `i` creates `ns-<w>-<i/2>`, odd `i` deletes it,
/// so the state stays small however many events are written.
pub fn writer_event(w: usize, i: u64) -> Event {
    let name = format!("ns-{w}-{}", i / 2);
    if i.is_multiple_of(2) {
        created(&name, w, Utc::now())
    } else {
        deleted(&name)
    }
}

/// The journal draft of an event, as the journal writer builds it.
pub fn draft(e: &Event, at: DateTime<Utc>) -> Draft {
    berth_actors::journal_writer::draft(e, at)
}

/// The 1-minute load average (other work on the machine skews every figure).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(-1.0)
}

/// A line describing the machine: CPUs and load.
pub fn machine() -> String {
    format!(
        "machine: {} CPUs, load average {:.2} at start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    )
}

/// CPU time (user + system) from `/proc`, in seconds; USER_HZ is 100 on Linux.
pub mod cpu {
    use std::collections::BTreeMap;

    #[allow(clippy::cast_precision_loss)]
    fn ticks(stat: &str) -> Option<f64> {
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = f.get(11)?.parse().ok()?;
        let stime: u64 = f.get(12)?.parse().ok()?;
        Some((utime + stime) as f64 / 100.0)
    }

    /// The whole process (threads that have exited included).
    pub fn process() -> f64 {
        std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| ticks(&s))
            .unwrap_or(0.0)
    }

    /// CPU seconds of every live thread, grouped by name with trailing digits removed.
    pub fn by_thread_group() -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return out;
        };
        for t in dir.flatten() {
            let Ok(comm) = std::fs::read_to_string(t.path().join("comm")) else {
                continue;
            };
            let group = comm
                .trim_end()
                .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == ' ')
                .to_string();
            if let Some(cpu) = std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| ticks(&s))
            {
                *out.entry(group).or_insert(0.0) += cpu;
            }
        }
        out
    }

    /// Live threads whose name starts with `prefix`.
    pub fn threads(prefix: &str) -> f64 {
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return 0.0;
        };
        dir.flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim_end().starts_with(prefix))
            })
            .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
            .filter_map(|s| ticks(&s))
            .sum()
    }
}

/// Milliseconds, with fractions.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Events per second.
#[allow(clippy::cast_precision_loss)]
pub fn per_sec(events: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        events as f64 / s
    } else {
        0.0
    }
}

/// The `p`-th percentile (0..=100) of sorted values (nearest rank); 0 when empty.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of some values (the lower middle for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
}

/// Rounds to two decimals for the JSON line.
pub fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A count with thin thousands separators, for people.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_helpers() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn writer_events_alternate_and_encode() {
        let c = writer_event(3, 10);
        let d = writer_event(3, 11);
        assert_eq!(c.topic(), "namespace.created");
        assert_eq!(d.topic(), "namespace.deleted");
        assert_eq!(c.namespace(), d.namespace());
        let dr = draft(&c, Utc::now());
        let back = Event::decode(&dr.topic, dr.schema, &dr.payload, dr.at).unwrap();
        assert_eq!(back, c);
    }
}
