use actix::{Actor, Context};

use super::ImportActor;

impl Actor for ImportActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(import = %self.id, namespace = %self.namespace, "import started");
    }
}
