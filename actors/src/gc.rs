//! Garbage collection: plan from a copy of the state (engine's `gc::plan`), then
//! remove, re-checking leases under the content gate so that work in flight is never
//! collected. Runs inside the supervisor, so no snapshot is created or committed
//! meanwhile; the plan itself reads only small JSON blobs, so this is quick.

use std::collections::HashMap;
use std::time::Instant;

use berth_engine::content::{IngestManager, Manager};
use berth_engine::event::{ContentDeleted, Event, GcCompleted, SnapshotRemoved};
use berth_engine::ids::{Digest, NamespaceName};
use berth_engine::EngineError;

use crate::storage::{blocking, Stores};
use crate::WriterHandle;

/// Collects everything nothing references; returns what was done (also journaled as
/// `gc.completed`).
pub async fn collect(
    writer: WriterHandle,
    stores: Stores,
    namespace: NamespaceName,
) -> Result<GcCompleted, EngineError> {
    let started = Instant::now();
    let state = writer.state().read().clone();
    let st = stores.clone();
    let (plan, sizes) = blocking(move || {
        let infos = st.content.list()?;
        let sizes: HashMap<Digest, u64> =
            infos.iter().map(|i| (i.digest.clone(), i.size)).collect();
        let blobs: Vec<Digest> = infos.into_iter().map(|i| i.digest).collect();
        let storage = st.snapshotter.walk()?;
        let ingests: Vec<(String, Option<Digest>)> = st
            .content
            .ingests()?
            .into_iter()
            .map(|i| (i.reference, i.expected))
            .collect();
        let read = |d: &Digest| st.read_document(d).ok();
        let plan = berth_engine::gc::plan(&state, &[], &blobs, &storage, &ingests, &read);
        Ok((plan, sizes))
    })
    .await?;

    // Blobs: recorded ones get an event, then their file goes; orphans just go. Each
    // under the content gate, after checking leases again (an import leases a blob
    // before it looks for it).
    let (w, st, ns, content, orphans) = (
        writer.clone(),
        stores.clone(),
        namespace.clone(),
        plan.content.clone(),
        plan.orphan_blobs.clone(),
    );
    let (content_removed, mut bytes_freed) = blocking(move || {
        let mut removed = 0u64;
        let mut freed = 0u64;
        let items = content
            .iter()
            .map(|d| (d, true))
            .chain(orphans.iter().map(|d| (d, false)));
        for (digest, recorded) in items {
            let _gate = st.gate();
            let (leased, _) = berth_engine::gc::leased(&w.state().read());
            if leased.contains(digest) {
                continue;
            }
            if recorded {
                w.append_blocking(vec![Event::ContentDeleted(ContentDeleted {
                    namespace: ns.clone(),
                    digest: digest.clone(),
                })])?;
            }
            match st.content.delete(digest) {
                Ok(()) => {
                    removed += 1;
                    freed += sizes.get(digest).copied().unwrap_or(0);
                }
                Err(e) if e.kind() == berth_engine::ErrorKind::NotFound => removed += 1,
                Err(e) => tracing::warn!(%digest, error = %e, "gc: cannot remove blob"),
            }
        }
        Ok((removed, freed))
    })
    .await?;
    // Snapshots, children first.
    let mut snapshots_removed = 0u64;
    for (ns, key) in &plan.snapshots {
        let Some(snap) = writer.state().read().storage.snapshot(ns, key).cloned() else {
            continue;
        };
        let (_, leased) = berth_engine::gc::leased(&writer.state().read());
        if leased.contains(&(ns.clone(), key.clone())) {
            continue;
        }
        let usage = stores.snapshotter.usage(snap.id).unwrap_or_default();
        writer
            .append(vec![Event::SnapshotRemoved(SnapshotRemoved {
                namespace: ns.clone(),
                key: key.clone(),
                reason: "collected".into(),
            })])
            .await?;
        let s = stores.snapshotter.clone();
        let id = snap.id;
        blocking(move || s.remove(id)).await?;
        snapshots_removed += 1;
        bytes_freed += usage.size;
    }
    for id in &plan.orphan_storage {
        let s = stores.snapshotter.clone();
        let id = *id;
        bytes_freed += s.usage(id).unwrap_or_default().size;
        blocking(move || s.remove(id)).await?;
        snapshots_removed += 1;
    }
    for r in &plan.ingests {
        match stores.content.abort(r) {
            Ok(()) => {}
            Err(e) => tracing::debug!(reference = %r, error = %e, "gc: ingest left in place"),
        }
    }
    let done = GcCompleted {
        namespace,
        content_removed,
        snapshots_removed,
        bytes_freed,
        took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    writer
        .append(vec![Event::GcCompleted(done.clone())])
        .await?;
    tracing::info!(
        content_removed,
        snapshots_removed,
        bytes_freed,
        took_ms = done.took_ms,
        "garbage collected"
    );
    Ok(done)
}
