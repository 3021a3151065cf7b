//! Live subscriptions with catch-up from disk.
//!
//! A [`Subscription`] reads from disk up to the durable tip, then registers a live
//! buffer under the same lock the writer publishes under, but only if the tip has not
//! moved since its last disk read; otherwise it reads more first. So the switch from
//! disk to live has neither a gap nor a duplicate. A live buffer that fills up is
//! dropped by the writer (which never waits): the subscription then yields what was
//! buffered, [`SubEvent::Lagged`], and ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::record::Record;
use crate::{Journal, JournalError, Result};

/// Records read from disk per step of the catch-up.
const CATCH_UP_CHUNK: usize = 512;

/// What a subscription yields.
#[derive(Debug, Clone)]
pub enum SubEvent {
    /// The next record.
    Record(Arc<Record>),
    /// The subscriber fell too far behind and was dropped; it must resubscribe from the
    /// last sequence number it saw. Nothing follows this.
    Lagged,
}

/// The writer's end of one live subscriber.
pub(crate) struct LiveTx {
    tx: mpsc::Sender<Arc<Record>>,
    lagged: Arc<AtomicBool>,
}

impl LiveTx {
    pub(crate) fn new(cap: usize) -> (LiveTx, mpsc::Receiver<Arc<Record>>, Arc<AtomicBool>) {
        let (tx, rx) = mpsc::channel(cap);
        let lagged = Arc::new(AtomicBool::new(false));
        (
            LiveTx {
                tx,
                lagged: lagged.clone(),
            },
            rx,
            lagged,
        )
    }

    /// Offers records without waiting. Returns false when this subscriber must be
    /// dropped (its buffer is full, or it went away).
    pub(crate) fn send_all(&self, records: &[Arc<Record>]) -> bool {
        for r in records {
            match self.tx.try_send(r.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.lagged.store(true, Ordering::Release);
                    return false;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        true
    }
}

enum Phase {
    CatchUp,
    Live(mpsc::Receiver<Arc<Record>>, Arc<AtomicBool>),
    Done,
}

/// A subscription started by [`Journal::subscribe_from`].
pub struct Subscription {
    journal: Journal,
    next: u64,
    buffered: VecDeque<Arc<Record>>,
    phase: Phase,
}

impl Subscription {
    pub(crate) fn new(journal: Journal, from: u64) -> Subscription {
        Subscription {
            journal,
            next: from,
            buffered: VecDeque::new(),
            phase: Phase::CatchUp,
        }
    }

    /// The next sequence number this subscription will yield.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// The next item; `None` when the journal closed or after [`SubEvent::Lagged`].
    /// A corrupt record on disk yields an error and ends the subscription.
    pub async fn next(&mut self) -> Option<Result<SubEvent>> {
        loop {
            if let Some(r) = self.buffered.pop_front() {
                self.next = r.seq + 1;
                return Some(Ok(SubEvent::Record(r)));
            }
            match &mut self.phase {
                Phase::Done => return None,
                Phase::CatchUp => match self.catch_up_step() {
                    Ok(()) => continue,
                    Err(JournalError::Closed) => {
                        self.phase = Phase::Done;
                        return None;
                    }
                    Err(e) => {
                        self.phase = Phase::Done;
                        return Some(Err(e));
                    }
                },
                Phase::Live(rx, lagged) => match rx.recv().await {
                    Some(r) => {
                        // Records older than wanted cannot arrive (registration is at
                        // the exact tip), but be strict about order anyway.
                        if r.seq < self.next {
                            continue;
                        }
                        self.next = r.seq + 1;
                        return Some(Ok(SubEvent::Record(r)));
                    }
                    None => {
                        let was_lagged = lagged.load(Ordering::Acquire);
                        self.phase = Phase::Done;
                        return was_lagged.then_some(Ok(SubEvent::Lagged));
                    }
                },
            }
        }
    }

    /// Reads one chunk from disk, or switches to live when at the tip. `buffered` is
    /// empty on entry, so `next` is where the disk read starts.
    fn catch_up_step(&mut self) -> Result<()> {
        for attempt in 0..2 {
            // Not `read_from`: it fails the whole chunk on a bad record, so the good
            // records before it would never be delivered. Deliver them; the next step
            // starts at the bad record and returns its error.
            let mut chunk = Vec::new();
            for r in self.journal.iter_from(self.next).take(CATCH_UP_CHUNK) {
                match r {
                    Ok(r) => chunk.push(Arc::new(r)),
                    Err(e) if chunk.is_empty() => return Err(e),
                    Err(_) => break,
                }
            }
            if let Some(first) = chunk.first() {
                if first.seq != self.next {
                    return Err(JournalError::Corrupt {
                        seq: self.next,
                        reason: "record missing".into(),
                    });
                }
                self.buffered.extend(chunk);
                return Ok(());
            }
            if let Some((rx, lagged)) = self.journal.register_live(self.next)? {
                self.phase = Phase::Live(rx, lagged);
                return Ok(());
            }
            // The tip moved between the read and the registration: read again. If the
            // second read finds nothing either, records below the tip are missing.
            if attempt == 1 && self.journal.last_seq() >= self.next {
                return Err(JournalError::Corrupt {
                    seq: self.next,
                    reason: "record missing below the durable tip".into(),
                });
            }
        }
        Ok(())
    }
}
