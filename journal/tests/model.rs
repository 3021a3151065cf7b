//! Model-based property test: random operation sequences are applied both to a
//! [`Journal`] and to a plain in-memory model; after every step they must agree.

mod common;

use std::collections::BTreeMap;

use berth_journal::{Checkpoint, Draft, Journal, JournalError, Record, StreamRef};
use chrono::DateTime;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

use common::small_opts;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Draft>),
    Read {
        from: u64,
        limit: usize,
    },
    Iter {
        from: u64,
    },
    /// Checkpoint at a valid seq chosen by `pick` (or an invalid one when `invalid`).
    Checkpoint {
        pick: u64,
        invalid: bool,
        data: Vec<u8>,
    },
    LatestCheckpoint,
    Verify,
    Reopen,
}

fn draft() -> impl Strategy<Value = Draft> {
    (
        any::<i64>(),
        "\\PC{0,8}",
        ("[a-z]{1,9}", "[a-f0-9]{0,12}"),
        "[a-z]{1,8}(\\.[a-z_]{1,8}){0,2}",
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..96),
    )
        .prop_map(
            |(nanos, namespace, (kind, id), topic, schema, payload)| Draft {
                at: DateTime::from_timestamp_nanos(nanos),
                namespace,
                stream: StreamRef::new(kind, id),
                topic,
                schema,
                payload,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(draft(), 0..12).prop_map(Op::Append),
        2 => (0u64..60, 0usize..20).prop_map(|(from, limit)| Op::Read { from, limit }),
        2 => (0u64..60).prop_map(|from| Op::Iter { from }),
        2 => (any::<u64>(), proptest::bool::weighted(0.2), proptest::collection::vec(any::<u8>(), 0..32))
            .prop_map(|(pick, invalid, data)| Op::Checkpoint { pick, invalid, data }),
        1 => Just(Op::LatestCheckpoint),
        1 => Just(Op::Verify),
        1 => Just(Op::Reopen),
    ]
}

/// What the journal should hold.
#[derive(Default)]
struct Model {
    records: Vec<Draft>,
    /// seq -> data; only the newest three (by seq) are kept.
    checkpoints: BTreeMap<u64, Vec<u8>>,
}

impl Model {
    fn last_seq(&self) -> u64 {
        self.records.len() as u64
    }

    /// The records with `seq >= from` (from 0 counts as 1), at most `limit`.
    fn slice(&self, from: u64, limit: usize) -> Vec<(u64, &Draft)> {
        (1u64..)
            .zip(&self.records)
            .skip(usize::try_from(from.max(1) - 1).unwrap_or(usize::MAX))
            .take(limit)
            .collect()
    }
}

fn same(rec: &Record, seq: u64, d: &Draft) -> Result<(), TestCaseError> {
    prop_assert_eq!(rec.seq, seq);
    prop_assert_eq!(rec.at, d.at, "at of {}", seq);
    prop_assert_eq!(&rec.namespace, &d.namespace, "namespace of {}", seq);
    prop_assert_eq!(&rec.stream, &d.stream, "stream of {}", seq);
    prop_assert_eq!(&rec.topic, &d.topic, "topic of {}", seq);
    prop_assert_eq!(rec.schema, d.schema, "schema of {}", seq);
    prop_assert_eq!(&rec.payload, &d.payload, "payload of {}", seq);
    Ok(())
}

fn same_list<'a>(
    got: impl IntoIterator<Item = &'a Record>,
    want: &[(u64, &Draft)],
) -> Result<(), TestCaseError> {
    let got: Vec<&Record> = got.into_iter().collect();
    prop_assert_eq!(got.len(), want.len(), "record count");
    for (r, (seq, d)) in got.iter().zip(want) {
        same(r, *seq, d)?;
    }
    Ok(())
}

fn same_checkpoint(got: Option<Checkpoint>, model: &Model) -> Result<(), TestCaseError> {
    let want = model.checkpoints.iter().next_back();
    match (got, want) {
        (None, None) => Ok(()),
        (Some(cp), Some((seq, data))) => {
            prop_assert_eq!(cp.seq, *seq);
            prop_assert_eq!(&cp.data, data);
            Ok(())
        }
        (got, want) => Err(TestCaseError::fail(format!(
            "latest checkpoint: journal {got:?}, model {want:?}"
        ))),
    }
}

/// The full comparison done after every step.
fn check_all(j: &Journal, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(j.last_seq(), model.last_seq());
    let all: Vec<Record> = j
        .iter_from(1)
        .collect::<Result<_, _>>()
        .map_err(|e| TestCaseError::fail(format!("iter_from(1): {e}")))?;
    // Contiguous from 1 and equal to the model.
    same_list(&all, &model.slice(1, usize::MAX))?;
    same_checkpoint(
        j.latest_checkpoint()
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
        model,
    )?;
    let stats = j.stats().map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(stats.records, model.last_seq());
    prop_assert_eq!(stats.last_seq, model.last_seq());
    prop_assert_eq!(stats.first_seq, u64::from(!model.records.is_empty()));
    let cps: Vec<(u64, Vec<u8>)> = model
        .checkpoints
        .iter()
        .rev()
        .map(|(s, d)| (*s, d.clone()))
        .collect();
    let got: Vec<(u64, u64)> = stats.checkpoints.iter().map(|c| (c.seq, c.bytes)).collect();
    let want: Vec<(u64, u64)> = cps.iter().map(|(s, d)| (*s, d.len() as u64)).collect();
    prop_assert_eq!(got, want);
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Journal::open(dir.path(), small_opts())
            .map_err(|e| TestCaseError::fail(format!("open: {e}")))
    };
    let (mut j, report) = open()?;
    prop_assert_eq!(report.last_seq, 0);
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append(drafts) => {
                let first = model.last_seq() + 1;
                let recs = j
                    .append_batch(drafts.clone())
                    .map_err(|e| TestCaseError::fail(format!("append: {e}")))?;
                model.records.extend(drafts);
                let want = model.slice(first, usize::MAX);
                same_list(recs.iter().map(|r| &**r), &want)?;
            }
            Op::Read { from, limit } => {
                let got = j
                    .read_from(from, limit)
                    .map_err(|e| TestCaseError::fail(format!("read_from: {e}")))?;
                same_list(got.iter().map(|r| &**r), &model.slice(from, limit))?;
            }
            Op::Iter { from } => {
                let got: Vec<Record> = j
                    .iter_from(from)
                    .collect::<Result<_, _>>()
                    .map_err(|e| TestCaseError::fail(format!("iter_from: {e}")))?;
                same_list(&got, &model.slice(from, usize::MAX))?;
            }
            Op::Checkpoint {
                pick,
                invalid,
                data,
            } => {
                let tip = model.last_seq();
                if invalid || tip == 0 {
                    let seq = if pick % 2 == 0 { 0 } else { tip + 1 + pick % 3 };
                    let r = j.checkpoint(seq, data);
                    prop_assert!(
                        matches!(r, Err(JournalError::Invalid(_))),
                        "checkpoint({}) with tip {}: {:?}",
                        seq,
                        tip,
                        r
                    );
                } else {
                    let seq = 1 + pick % tip;
                    j.checkpoint(seq, data.clone())
                        .map_err(|e| TestCaseError::fail(format!("checkpoint: {e}")))?;
                    model.checkpoints.insert(seq, data);
                    while model.checkpoints.len() > 3 {
                        model.checkpoints.pop_first();
                    }
                }
            }
            Op::LatestCheckpoint => {
                same_checkpoint(
                    j.latest_checkpoint()
                        .map_err(|e| TestCaseError::fail(e.to_string()))?,
                    &model,
                )?;
            }
            Op::Verify => {
                let v = j.verify().map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(v.ok(), "{:?}", v);
                prop_assert_eq!(v.checked, model.last_seq());
                prop_assert_eq!(v.last_seq, model.last_seq());
                prop_assert_eq!(v.first_seq, u64::from(!model.records.is_empty()));
                prop_assert_eq!(v.checkpoints_checked, model.checkpoints.len() as u64);
            }
            Op::Reopen => {
                drop(j);
                let (j2, report) = open()?;
                j = j2;
                prop_assert_eq!(report.last_seq, model.last_seq());
                prop_assert_eq!(report.cut, None);
                prop_assert!(report.bad_checkpoints.is_empty());
                let cp = model.checkpoints.keys().next_back().copied();
                prop_assert_eq!(report.checkpoint_seq, cp);
                prop_assert_eq!(report.verified_tail, model.last_seq() - cp.unwrap_or(0));
            }
        }
        check_all(&j, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn journal_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
