use actix::{Actor, Context};

use super::NamespaceActor;

impl Actor for NamespaceActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::debug!(namespace = %self.name, "namespace actor started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::debug!(namespace = %self.name, "namespace actor stopped");
    }
}
