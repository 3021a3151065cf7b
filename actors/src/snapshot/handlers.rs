use actix::{ActorContext, ActorFutureExt, AtomicResponse, Handler, WrapFuture};
use berth_engine::event::{Event, SnapshotPrepared, SnapshotRemoved};
use berth_engine::mount::Mount;
use berth_engine::snapshot::Kind;
use berth_engine::EngineError;

use super::SnapshotActor;
use crate::messages::{CommitStorage, Materialize, RemoveStorage};
use crate::storage::blocking;

impl Handler<Materialize> for SnapshotActor {
    type Result = AtomicResponse<Self, Result<(Vec<Mount>, u64), EngineError>>;

    fn handle(&mut self, msg: Materialize, _ctx: &mut Self::Context) -> Self::Result {
        let snapshotter = self.stores.snapshotter.clone();
        let writer = self.writer.clone();
        let (namespace, key, id) = (self.namespace.clone(), self.key.clone(), self.id);
        AtomicResponse::new(Box::pin(
            async move {
                let parents = msg.parents.clone();
                let made = blocking(move || match msg.kind {
                    Kind::View => snapshotter.view(id, &parents),
                    _ => snapshotter.prepare(id, &parents),
                })
                .await;
                match made {
                    Ok(mounts) => {
                        let c = writer
                            .append(vec![Event::SnapshotPrepared(SnapshotPrepared {
                                namespace,
                                key,
                            })])
                            .await?;
                        Ok((mounts, c.last_seq()))
                    }
                    Err(e) => {
                        // Roll the intent back: no storage, no record.
                        let _ = writer
                            .append(vec![Event::SnapshotRemoved(SnapshotRemoved {
                                namespace,
                                key,
                                reason: format!("rolled back: {e}"),
                            })])
                            .await;
                        Err(e)
                    }
                }
            }
            .into_actor(self)
            .map(|res, _act, ctx| {
                if res.is_err() {
                    ctx.stop();
                }
                res
            }),
        ))
    }
}

impl Handler<CommitStorage> for SnapshotActor {
    type Result = AtomicResponse<Self, Result<u64, EngineError>>;

    fn handle(&mut self, msg: CommitStorage, _ctx: &mut Self::Context) -> Self::Result {
        let snapshotter = self.stores.snapshotter.clone();
        let writer = self.writer.clone();
        let id = self.id;
        let name = msg.name.clone();
        AtomicResponse::new(Box::pin(
            async move {
                blocking(move || snapshotter.commit(id)).await?;
                Ok(writer.append(msg.events).await?.last_seq())
            }
            .into_actor(self)
            .map(move |res, act, _ctx| {
                if res.is_ok() {
                    act.key = name;
                }
                res
            }),
        ))
    }
}

impl Handler<RemoveStorage> for SnapshotActor {
    type Result = AtomicResponse<Self, Result<u64, EngineError>>;

    fn handle(&mut self, msg: RemoveStorage, _ctx: &mut Self::Context) -> Self::Result {
        let snapshotter = self.stores.snapshotter.clone();
        let writer = self.writer.clone();
        let id = self.id;
        AtomicResponse::new(Box::pin(
            async move {
                // The record goes first: a crash after it leaves only orphaned storage,
                // which recovery removes; the reverse would leave a record without data.
                let seq = writer.append(msg.events).await?.last_seq();
                blocking(move || snapshotter.remove(id)).await?;
                Ok(seq)
            }
            .into_actor(self)
            .map(|res, _act, ctx| {
                ctx.stop();
                res
            }),
        ))
    }
}
