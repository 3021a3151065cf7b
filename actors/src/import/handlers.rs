use actix::{ActorContext, ActorFutureExt, AtomicResponse, Handler, WrapFuture};
use berth_engine::archive::{self, BlobEvent, ImportOptions};
use berth_engine::event::{
    Event, ImportCompleted, ImportFailed, ImportStarted, LeaseDeleted, LeaseResource,
};
use berth_engine::{decide, Command, EngineError};
use chrono::Utc;

use super::{unpack_image, ImportActor};
use crate::messages::{ImportReply, RunImport};
use crate::storage::blocking;

impl Handler<RunImport> for ImportActor {
    type Result = AtomicResponse<Self, Result<ImportReply, EngineError>>;

    fn handle(&mut self, msg: RunImport, _ctx: &mut Self::Context) -> Self::Result {
        let id = self.id.clone();
        let ns = self.namespace.clone();
        let name = self.name.clone();
        let platform = self.platform.clone();
        let writer = self.writer.clone();
        let stores = self.stores.clone();
        let supervisor = self.supervisor.clone();
        let lease = format!("import-{id}");
        AtomicResponse::new(Box::pin(
            async move {
                let mut start = decide(
                    &writer.state().read(),
                    Command::CreateLease {
                        namespace: ns.clone(),
                        id: lease.clone(),
                        ephemeral: true,
                        labels: Default::default(),
                        at: Utc::now(),
                    },
                )?;
                start.push(Event::ImportStarted(ImportStarted {
                    namespace: ns.clone(),
                    id: id.clone(),
                    name: name.clone(),
                    at: Utc::now(),
                }));
                writer.append(start).await?;

                let work = async {
                    // 1. The archive's blobs into the content store, each leased first.
                    let (w, st, lease_id, nsc) =
                        (writer.clone(), stores.clone(), lease.clone(), ns.clone());
                    let opts = ImportOptions {
                        name: name.clone(),
                        ingest_prefix: format!("import-{id}"),
                    };
                    let reader = msg.reader;
                    let imported = blocking(move || {
                        let mut on_blob = |ev: BlobEvent| -> Result<(), EngineError> {
                            match ev {
                                BlobEvent::Committing { digest, .. } => {
                                    let events = decide(
                                        &w.state().read(),
                                        Command::AddLeaseResource {
                                            namespace: nsc.clone(),
                                            id: lease_id.clone(),
                                            resource: LeaseResource::Content(digest),
                                        },
                                    )?;
                                    w.append_blocking(events)?;
                                    // Barrier: a collection deciding on this blob
                                    // finishes before the archive looks for it.
                                    drop(st.gate());
                                    Ok(())
                                }
                                BlobEvent::Committed { digest, size, .. } => {
                                    let events = decide(
                                        &w.state().read(),
                                        Command::CommitContent {
                                            namespace: nsc.clone(),
                                            digest,
                                            size,
                                            labels: Default::default(),
                                            at: Utc::now(),
                                        },
                                    )?;
                                    w.append_blocking(events)?;
                                    Ok(())
                                }
                            }
                        };
                        archive::import(reader, &st.content, opts, &mut on_blob)
                    })
                    .await?;
                    // 2. Unpack, 3. name.
                    let mut names = Vec::new();
                    let mut seq = 0;
                    for (image_name, target) in &imported.images {
                        unpack_image(
                            &writer,
                            &stores,
                            &supervisor,
                            &ns,
                            &lease,
                            &id,
                            target,
                            &platform,
                        )
                        .await?;
                        let events = decide(
                            &writer.state().read(),
                            Command::StoreImage {
                                namespace: ns.clone(),
                                name: image_name.clone(),
                                target: target.clone(),
                                labels: Default::default(),
                                at: Utc::now(),
                            },
                        )?;
                        seq = seq.max(writer.append(events).await?.last_seq());
                        names.push((image_name.clone(), target.clone()));
                    }
                    Ok::<_, EngineError>((names, seq))
                };
                let outcome = work.await;
                let end = match &outcome {
                    Ok((names, _)) => Event::ImportCompleted(ImportCompleted {
                        namespace: ns.clone(),
                        id: id.clone(),
                        images: names.iter().map(|(n, _)| n.clone()).collect(),
                        at: Utc::now(),
                    }),
                    Err(e) => Event::ImportFailed(ImportFailed {
                        namespace: ns.clone(),
                        id: id.clone(),
                        reason: e.to_string(),
                        at: Utc::now(),
                    }),
                };
                let c = writer
                    .append(vec![
                        end,
                        Event::LeaseDeleted(LeaseDeleted {
                            namespace: ns.clone(),
                            id: lease.clone(),
                        }),
                    ])
                    .await?;
                let (images, _) = outcome?;
                Ok(ImportReply {
                    id,
                    images,
                    seq: c.last_seq(),
                })
            }
            .into_actor(self)
            .map(|res, _act, ctx| {
                ctx.stop();
                res
            }),
        ))
    }
}
