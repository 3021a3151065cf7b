use actix::{ActorContext, ActorFutureExt, AtomicResponse, Handler, WrapFuture};
use berth_engine::{decide, Command, EngineError};

use super::NamespaceActor;
use crate::messages::DeleteNamespace;

impl Handler<DeleteNamespace> for NamespaceActor {
    type Result = AtomicResponse<Self, Result<u64, EngineError>>;

    fn handle(&mut self, msg: DeleteNamespace, _ctx: &mut Self::Context) -> Self::Result {
        let decided = decide(
            &self.writer.state().read(),
            Command::DeleteNamespace { name: msg.name },
        );
        let writer = self.writer.clone();
        AtomicResponse::new(Box::pin(
            async move { writer.append(decided?).await }
                .into_actor(self)
                .map(|res, _act, ctx| {
                    let committed = res?;
                    ctx.stop();
                    Ok(committed.last_seq())
                }),
        ))
    }
}
