use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, WrapFuture};

use super::fetch::{run, Job};
use super::PullActor;

impl Actor for PullActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(pull = %self.id, namespace = %self.request.namespace, reference = %self.request.reference, "pull started");
        let job = Job {
            id: self.id.clone(),
            request: self.request.clone(),
            writer: self.writer.clone(),
            stores: self.stores.clone(),
            supervisor: self.supervisor.clone(),
            registry: self.registry.clone(),
            progress: self.progress.clone(),
        };
        ctx.spawn(run(job).into_actor(self).map(|res, act, ctx| {
            match &res {
                Ok(r) => tracing::info!(pull = %act.id, image = %r.image, digest = %r.digest, "pull completed"),
                Err(e) => tracing::warn!(pull = %act.id, error = %e, "pull failed"),
            }
            for w in act.waiters.drain(..) {
                let _ = w.send(res.clone());
            }
            act.outcome = Some(res);
            ctx.stop();
        }));
    }
}
