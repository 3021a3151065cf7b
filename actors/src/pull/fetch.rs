//! The work of a pull: resolve, store the documents, download the layers through
//! resumable ingests, unpack, name the image.

use std::io::Write;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::Addr;
use berth_engine::archive::MAX_DOCUMENT_SIZE;
use berth_engine::content::{Expected, Ingester, Writer};
use berth_engine::event::{
    Event, LeaseDeleted, LeaseResource, PullCompleted, PullFailed, PullLayerFetched, PullStarted,
    Target,
};
use berth_engine::ids::{Digest, ImageName};
use berth_engine::image::{self, BlobRef, Config, Parsed};
use berth_engine::registry::RegistryClient;
use berth_engine::{decide, Command, EngineError, ErrorKind};
use chrono::Utc;
use futures_util::future::{select, Either};
use tokio::sync::{broadcast, oneshot};

use crate::messages::{PullProgress, PullReply, PullRequest};
use crate::storage::{blocking, Stores};
use crate::supervisor::Supervisor;
use crate::WriterHandle;

/// Most times a broken layer download is resumed (or a failed request retried on top
/// of the client's own retries).
const MAX_BREAKS: u32 = 5;
/// Bytes gathered before one (blocking) write to the ingest.
const WRITE_CHUNK: usize = 1 << 20;
/// Bytes received but not yet written go to the ingest after this much silence.
const IDLE_FLUSH: Duration = Duration::from_millis(250);
/// How long to wait between looks at an ingest another pull is writing.
const BUSY_POLL: Duration = Duration::from_millis(100);

/// The ingest ref of a blob a pull downloads: derived from the digest alone, so two
/// pulls that share a layer write it once (the second waits for the first's commit)
/// and a later pull resumes an interrupted download from the ingest's offset.
pub fn ingest_ref(digest: &Digest) -> String {
    format!("pull-{digest}")
}

/// Everything the work needs.
pub(crate) struct Job {
    pub id: String,
    pub request: PullRequest,
    pub writer: WriterHandle,
    pub stores: Stores,
    pub supervisor: Addr<Supervisor>,
    pub registry: RegistryClient,
    pub progress: broadcast::Sender<PullProgress>,
}

impl Job {
    fn report(&self, p: PullProgress) {
        // Nobody listening is fine.
        let _ = self.progress.send(p);
    }

    fn lease(&self) -> String {
        format!("pull-{}", self.id)
    }
}

fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1u64 << attempt.min(4)))
}

/// Runs the pull: the journal brackets it with `pull.started` and `pull.completed` /
/// `pull.failed`; the lease goes either way.
pub(crate) async fn run(job: Job) -> Result<PullReply, EngineError> {
    let ns = job.request.namespace.clone();
    let lease = job.lease();
    let mut start = decide(
        &job.writer.state().read(),
        Command::CreateLease {
            namespace: ns.clone(),
            id: lease.clone(),
            ephemeral: true,
            labels: Default::default(),
            at: Utc::now(),
        },
    )?;
    start.push(Event::PullStarted(PullStarted {
        namespace: ns.clone(),
        id: job.id.clone(),
        reference: job.request.reference.to_string(),
        platform: job.request.platform.to_string(),
        at: Utc::now(),
    }));
    job.writer.append(start).await?;
    let outcome = pull(&job).await;
    let end = match &outcome {
        Ok((image, digest)) => Event::PullCompleted(PullCompleted {
            namespace: ns.clone(),
            id: job.id.clone(),
            image: image.clone(),
            digest: digest.clone(),
            at: Utc::now(),
        }),
        Err(e) => Event::PullFailed(PullFailed {
            namespace: ns.clone(),
            id: job.id.clone(),
            reason: e.to_string(),
            at: Utc::now(),
        }),
    };
    let c = job
        .writer
        .append(vec![
            end,
            Event::LeaseDeleted(LeaseDeleted {
                namespace: ns,
                id: lease,
            }),
        ])
        .await?;
    let (image, digest) = outcome?;
    Ok(PullReply {
        id: job.id.clone(),
        image,
        digest,
        seq: c.last_seq(),
    })
}

async fn pull(job: &Job) -> Result<(ImageName, Digest), EngineError> {
    let r = &job.request.reference;
    let creds = job.request.credentials.as_ref();
    let name = ImageName::parse(&r.to_string())?;
    let (desc, mut bytes) = job.registry.resolve(r, creds).await?;
    job.report(PullProgress::Resolved {
        digest: desc.digest.clone(),
        media_type: desc.media_type.clone(),
    });
    let top = Target {
        media_type: desc.media_type.clone(),
        digest: desc.digest.clone(),
        size: desc.size,
    };
    store_bytes(job, &desc.digest, bytes.to_vec()).await?;
    let mut media_type = desc.media_type;
    let mut manifest = None;
    for _ in 0..4 {
        match image::parse(Some(&media_type), &bytes)? {
            Parsed::Index(index) => {
                let d = index.select(&job.request.platform)?;
                let digest = image::descriptor_digest(d)?;
                let (md, mb) = job.registry.fetch_manifest(r, &digest, creds).await?;
                store_bytes(job, &md.digest, mb.to_vec()).await?;
                media_type = md.media_type;
                bytes = mb;
            }
            Parsed::Manifest(m) => {
                manifest = Some(m);
                break;
            }
        }
    }
    let manifest = manifest.ok_or_else(|| {
        EngineError::InvalidArgument(format!("image {r} nests indexes too deeply"))
    })?;
    let cfg = manifest.config().clone();
    let cfg_bytes = job
        .registry
        .fetch_blob_bytes(r, &cfg.digest, cfg.size.min(MAX_DOCUMENT_SIZE), creds)
        .await?;
    let config = Config::parse(&cfg_bytes)?;
    config.check_manifest(&manifest)?;
    store_bytes(job, &cfg.digest, cfg_bytes.to_vec()).await?;

    fetch_and_unpack(job, manifest.layers(), &config).await?;
    let events = decide(
        &job.writer.state().read(),
        Command::StoreImage {
            namespace: job.request.namespace.clone(),
            name: name.clone(),
            target: top.clone(),
            labels: Default::default(),
            at: Utc::now(),
        },
    )?;
    job.writer.append(events).await?;
    Ok((name, top.digest))
}

/// Downloads the layers concurrently (bounded by the client's download slots) and,
/// pipelined, unpacks them bottom-up: layer `i` is unpacked as soon as its blob is
/// committed (digest verified) and layer `i - 1`'s snapshot is, while later layers
/// still download. A failed download stops the unpack at the next layer boundary (the
/// layer being applied is finished, never abandoned mid-way) and fails the pull; a
/// failed unpack cancels the downloads still running. Either way the image is not
/// named, and what was written stays under the pull's lease until it goes.
async fn fetch_and_unpack(
    job: &Job,
    layers: &[BlobRef],
    config: &Config,
) -> Result<(), EngineError> {
    let (done, committed): (Vec<_>, Vec<_>) =
        layers.iter().map(|_| oneshot::channel::<()>()).unzip();
    let stop = AtomicBool::new(false);
    let downloads = async {
        futures_util::future::try_join_all(layers.iter().zip(done).map(|(l, done)| async move {
            fetch_layer(job, &l.digest, l.size).await?;
            // The unpacker may have stopped already.
            let _ = done.send(());
            Ok::<_, EngineError>(())
        }))
        .await
        // Completing drops the downloads in flight, and with them their senders.
        .map(drop)
    };
    let unpack = async {
        let chain = config.chain_ids();
        let diff_ids = config.diff_ids();
        let mut parent: Option<String> = None;
        for (i, (layer, committed)) in layers.iter().zip(committed).enumerate() {
            if committed.await.is_err() || stop.load(Ordering::Relaxed) {
                return Err(EngineError::Unavailable(format!(
                    "pull {}: a layer download failed; unpacking stopped",
                    job.id
                )));
            }
            if i == 0 {
                job.report(PullProgress::Unpacking);
            }
            let chain_id = chain[i].to_string();
            job.stores
                .unpack_layer(
                    &job.writer,
                    &job.supervisor,
                    &job.request.namespace,
                    &job.lease(),
                    &format!("extract-{}-{i}", job.id),
                    &chain_id,
                    parent.as_deref(),
                    layer,
                    &diff_ids[i],
                )
                .await?;
            parent = Some(chain_id);
        }
        Ok(())
    };
    let (downloads, unpack) = (pin!(downloads), pin!(unpack));
    match select(downloads, unpack).await {
        Either::Left((fetched, unpack)) => {
            if fetched.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            let unpacked = unpack.await;
            fetched?;
            unpacked
        }
        // A failed unpack drops (cancels) the downloads; the ingests stay resumable.
        Either::Right((unpacked, downloads)) => {
            unpacked?;
            downloads.await
        }
    }
}

/// Puts `digest` under the pull's lease, then passes the content gate (a collection
/// deciding on this blob finishes before we look for it).
async fn lease_blob(job: &Job, digest: &Digest) -> Result<(), EngineError> {
    let events = decide(
        &job.writer.state().read(),
        Command::AddLeaseResource {
            namespace: job.request.namespace.clone(),
            id: job.lease(),
            resource: LeaseResource::Content(digest.clone()),
        },
    )?;
    if !events.is_empty() {
        job.writer.append(events).await?;
    }
    drop(job.stores.gate());
    Ok(())
}

/// Journals `content.committed` for a blob in the store (nothing if it is known).
async fn record_blob(job: &Job, digest: &Digest, size: u64) -> Result<(), EngineError> {
    let events = decide(
        &job.writer.state().read(),
        Command::CommitContent {
            namespace: job.request.namespace.clone(),
            digest: digest.clone(),
            size,
            labels: Default::default(),
            at: Utc::now(),
        },
    )?;
    if !events.is_empty() {
        job.writer.append(events).await?;
    }
    Ok(())
}

/// Opens (or resumes) the ingest of `digest`; `None` when the blob is in the store
/// already. While another pull writes the same blob, waits until it commits (then
/// `None`) or gives up (then this pull takes the ingest over at its offset).
async fn open_ingest(job: &Job, digest: &Digest, size: u64) -> Result<Option<Writer>, EngineError> {
    let mut waiting = false;
    loop {
        let (st, d) = (job.stores.clone(), digest.clone());
        let opened = blocking(move || {
            st.content.writer(
                &ingest_ref(&d),
                Some(Expected {
                    digest: d.clone(),
                    size,
                }),
            )
        })
        .await;
        match opened {
            Ok(w) => return Ok(Some(w)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(None),
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                if !waiting {
                    tracing::debug!(pull = %job.id, %digest, "another pull is writing this blob; waiting");
                    waiting = true;
                }
                tokio::time::sleep(BUSY_POLL).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A commit that failed verification says so plainly.
fn verification(job: &Job, digest: &Digest, e: EngineError) -> EngineError {
    if e.kind() == ErrorKind::InvalidArgument {
        EngineError::InvalidArgument(format!(
            "digest mismatch: blob {digest} from registry {} does not match its digest; \
             nothing was committed ({e})",
            job.request.reference.registry()
        ))
    } else {
        e
    }
}

/// Writes a small document (index, manifest, config) already verified by the client.
async fn store_bytes(job: &Job, digest: &Digest, bytes: Vec<u8>) -> Result<(), EngineError> {
    lease_blob(job, digest).await?;
    let size = len64(bytes.len());
    if let Some(mut w) = open_ingest(job, digest, size).await? {
        let d = digest.clone();
        blocking(move || {
            if w.offset() > 0 {
                w.truncate(0)?;
            }
            w.write_all(&bytes)
                .map_err(|e| EngineError::InvalidArgument(format!("writing blob {d}: {e}")))?;
            w.commit(Some(size), Some(&d)).map(drop)
        })
        .await
        .map_err(|e| verification(job, digest, e))?;
    }
    record_blob(job, digest, size).await
}

/// Appends `bytes` to the ingest off the actor thread.
async fn write(mut w: Writer, bytes: Vec<u8>) -> Result<Writer, EngineError> {
    blocking(move || {
        w.write_all(&bytes).map_err(|e| {
            EngineError::InvalidArgument(format!(
                "the registry sent more than the layer's declared size: {e}"
            ))
        })?;
        Ok(w)
    })
    .await
}

/// Downloads one layer into its ingest, resuming from the ingest's offset after a
/// broken connection (a `Range` request), and commits it (size and digest checked).
async fn fetch_layer(job: &Job, digest: &Digest, size: u64) -> Result<(), EngineError> {
    lease_blob(job, digest).await?;
    let r = &job.request.reference;
    let creds = job.request.credentials.as_ref();
    if let Some(mut w) = open_ingest(job, digest, size).await? {
        let resumed_from = w.offset();
        let mut breaks = 0u32;
        while w.offset() < size {
            let offset = w.offset();
            let mut blob = match job.registry.fetch_blob(r, digest, offset, creds).await {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Unavailable && breaks < MAX_BREAKS => {
                    breaks += 1;
                    tracing::debug!(pull = %job.id, %digest, error = %e, "fetching a layer failed; retrying");
                    tokio::time::sleep(backoff(breaks)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if offset > 0 {
                if blob.resumed() && blob.start() != offset {
                    return Err(EngineError::Unavailable(format!(
                        "registry {} answered a range request for blob {digest} from byte \
                         {offset} with bytes from {}",
                        r.registry(),
                        blob.start()
                    )));
                }
                if blob.resumed() {
                    tracing::info!(pull = %job.id, %digest, offset, "resuming a layer download");
                } else {
                    w = blocking(move || {
                        w.truncate(0)?;
                        Ok(w)
                    })
                    .await?;
                }
            }
            let mut buf = Vec::with_capacity(WRITE_CHUNK);
            let broke = loop {
                let next = if buf.is_empty() {
                    blob.next_chunk().await
                } else {
                    match tokio::time::timeout(IDLE_FLUSH, blob.next_chunk()).await {
                        Ok(next) => next,
                        Err(_) => {
                            // The network is slow: put what came into the ingest, so a
                            // crash or a cut loses none of it.
                            w = write(
                                w,
                                std::mem::replace(&mut buf, Vec::with_capacity(WRITE_CHUNK)),
                            )
                            .await?;
                            job.report(PullProgress::Layer {
                                digest: digest.clone(),
                                current: w.offset(),
                                total: size,
                            });
                            continue;
                        }
                    }
                };
                match next {
                    Ok(Some(c)) => {
                        buf.extend_from_slice(&c);
                        if buf.len() >= WRITE_CHUNK {
                            w = write(
                                w,
                                std::mem::replace(&mut buf, Vec::with_capacity(WRITE_CHUNK)),
                            )
                            .await?;
                            job.report(PullProgress::Layer {
                                digest: digest.clone(),
                                current: w.offset(),
                                total: size,
                            });
                        }
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            drop(blob);
            if !buf.is_empty() {
                w = write(w, buf).await?;
                job.report(PullProgress::Layer {
                    digest: digest.clone(),
                    current: w.offset(),
                    total: size,
                });
            }
            let e = match broke {
                None if w.offset() >= size => break,
                None => EngineError::Unavailable(format!(
                    "registry {} ended blob {digest} at byte {} of {size}",
                    r.registry(),
                    w.offset()
                )),
                Some(e) => e,
            };
            if e.kind() != ErrorKind::Unavailable || breaks >= MAX_BREAKS {
                return Err(e);
            }
            breaks += 1;
            tracing::info!(pull = %job.id, %digest, at = w.offset(), error = %e, "layer download broke; resuming");
            tokio::time::sleep(backoff(breaks)).await;
        }
        let d = digest.clone();
        match blocking(move || w.commit(Some(size), Some(&d)).map(drop)).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::InvalidArgument && resumed_from > 0 => {
                // The bytes kept from an earlier attempt were damaged (a crash before
                // they were synced); the commit discarded them: once more from 0.
                tracing::warn!(pull = %job.id, %digest, resumed_from, error = %e, "a resumed ingest failed verification; downloading the layer again");
                return Box::pin(fetch_layer(job, digest, size)).await;
            }
            Err(e) => return Err(verification(job, digest, e)),
        }
    }
    record_blob(job, digest, size).await?;
    job.writer
        .append(vec![Event::PullLayerFetched(PullLayerFetched {
            namespace: job.request.namespace.clone(),
            id: job.id.clone(),
            digest: digest.clone(),
            size,
        })])
        .await?;
    job.report(PullProgress::LayerDone {
        digest: digest.clone(),
        size,
    });
    Ok(())
}
