//! Helpers shared by the integration tests (each test binary uses a subset).
#![allow(dead_code)]

use berth_journal::{Draft, Journal, OpenOptions, Record, StreamRef};
use chrono::{DateTime, Utc};

/// A small, seedable PRNG (SplitMix64): deterministic and dependency free.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(hi > lo);
        lo + self.next_u64() % (hi - lo)
    }

    /// Uniform in `lo..hi` as usize.
    pub fn range_usize(&mut self, lo: usize, hi: usize) -> usize {
        usize::try_from(self.range(lo as u64, hi as u64)).expect("fits")
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.range(0, one_in) == 0
    }
}

/// A seed for a test: `BERTH_TEST_SEED` if set, else derived from the clock. Printed so
/// a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("BERTH_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
            u64::from_ne_bytes(nanos.to_ne_bytes())
        });
    eprintln!("{test}: seed {seed} (replay with BERTH_TEST_SEED={seed})");
    seed
}

/// The deterministic timestamp used for the record at `seq`.
pub fn at_of(seq: u64) -> DateTime<Utc> {
    let nanos = 1_700_000_000_000_000_000i64 + i64::try_from(seq).expect("small seq") * 1_001;
    DateTime::from_timestamp_nanos(nanos)
}

/// The payload the tests write for `seq`: checkable from the seq alone.
pub fn payload_of(seq: u64) -> Vec<u8> {
    let len = usize::try_from(seq % 97).expect("small") + 1;
    let mut out = seq.to_be_bytes().to_vec();
    let low = seq.to_le_bytes()[0];
    out.extend((0..len).map(|i| low.wrapping_mul(31).wrapping_add(i.to_le_bytes()[0])));
    out
}

/// The draft the tests write for `seq` (everything derived from `seq`).
pub fn draft_for(seq: u64) -> Draft {
    Draft {
        at: at_of(seq),
        namespace: format!("ns{}", seq % 5),
        stream: StreamRef::new("container", format!("c{}", seq % 11)),
        topic: format!("topic.{}", seq % 7),
        schema: u16::try_from(seq % 3).expect("small") + 1,
        payload: payload_of(seq),
    }
}

/// Asserts `rec` is exactly what [`draft_for`] gives for its seq.
pub fn check_derived(rec: &Record) {
    let d = draft_for(rec.seq);
    assert_eq!(rec.at, d.at, "at of record {}", rec.seq);
    assert_eq!(
        rec.namespace, d.namespace,
        "namespace of record {}",
        rec.seq
    );
    assert_eq!(rec.stream, d.stream, "stream of record {}", rec.seq);
    assert_eq!(rec.topic, d.topic, "topic of record {}", rec.seq);
    assert_eq!(rec.schema, d.schema, "schema of record {}", rec.seq);
    assert_eq!(rec.payload, d.payload, "payload of record {}", rec.seq);
}

/// Appends `n` derived records (in batches of `batch`) to a journal.
pub fn append_derived(j: &Journal, n: u64, batch: u64) {
    let mut done = 0;
    while done < n {
        let first = j.last_seq() + 1;
        let k = batch.min(n - done);
        let drafts = (first..first + k).map(draft_for).collect();
        let recs = j.append_batch(drafts).expect("append");
        assert_eq!(recs.first().map(|r| r.seq), Some(first));
        done += k;
    }
}

/// Small options for tests.
pub fn small_opts() -> OpenOptions {
    OpenOptions {
        cache_bytes: 4 * 1024 * 1024,
        ..OpenOptions::default()
    }
}

/// Asserts the journal holds exactly the derived records 1..=n, in order.
pub fn assert_holds_derived(j: &Journal, n: u64) {
    let all: Vec<_> = j
        .iter_from(1)
        .collect::<Result<_, _>>()
        .expect("reading the journal");
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    all.iter().for_each(check_derived);
}
