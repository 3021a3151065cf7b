use actix::Handler;
use tokio::sync::oneshot;

use super::PullActor;
use crate::messages::{JoinPull, PullTicket};

impl Handler<JoinPull> for PullActor {
    type Result = actix::MessageResult<JoinPull>;

    fn handle(&mut self, _msg: JoinPull, _ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        match &self.outcome {
            Some(done) => {
                let _ = tx.send(done.clone());
            }
            None => self.waiters.push(tx),
        }
        actix::MessageResult(PullTicket {
            id: self.id.clone(),
            progress: self.progress.subscribe(),
            done: rx,
        })
    }
}
