use actix::{Actor, Context};

use super::SnapshotActor;

impl Actor for SnapshotActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::debug!(namespace = %self.namespace, key = %self.key, id = self.id, "snapshot actor started");
    }
}
