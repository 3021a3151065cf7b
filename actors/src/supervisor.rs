//! The supervisor: holds `id → Addr` of every entity actor, spawns them on demand and
//! routes commands. Creation goes through here so that uniqueness is decided by one
//! actor at a time.

use std::collections::HashMap;

use actix::{Actor, ActorFutureExt, Addr, AtomicResponse, Context, Handler, WrapFuture};
use berth_engine::ids::NamespaceName;
use berth_engine::{decide, Command, EngineError};
use chrono::Utc;

use crate::messages::{CountActors, CreateNamespace, DeleteNamespace, NamespaceReply};
use crate::namespace::NamespaceActor;
use crate::WriterHandle;

/// The supervisor actor.
pub struct Supervisor {
    writer: WriterHandle,
    namespaces: HashMap<NamespaceName, Addr<NamespaceActor>>,
}

impl Supervisor {
    /// A supervisor over the writer.
    pub fn new(writer: WriterHandle) -> Self {
        Supervisor {
            writer,
            namespaces: HashMap::new(),
        }
    }

    /// The actor of an existing namespace, spawned if it is not running.
    fn namespace(&mut self, name: &NamespaceName) -> Result<Addr<NamespaceActor>, EngineError> {
        if !self.writer.state().read().namespaces.contains_key(name) {
            self.namespaces.remove(name);
            return Err(EngineError::NotFound {
                kind: "namespace",
                id: name.to_string(),
            });
        }
        if let Some(addr) = self.namespaces.get(name) {
            if addr.connected() {
                return Ok(addr.clone());
            }
        }
        let addr = NamespaceActor::new(name.clone(), self.writer.clone()).start();
        self.namespaces.insert(name.clone(), addr.clone());
        Ok(addr)
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;
}

impl Handler<CreateNamespace> for Supervisor {
    type Result = AtomicResponse<Self, Result<NamespaceReply, EngineError>>;

    fn handle(&mut self, msg: CreateNamespace, _ctx: &mut Self::Context) -> Self::Result {
        let name = msg.name.clone();
        let decided = decide(
            &self.writer.state().read(),
            Command::CreateNamespace {
                name: msg.name,
                labels: msg.labels,
                at: Utc::now(),
            },
        );
        let writer = self.writer.clone();
        AtomicResponse::new(Box::pin(
            async move { writer.append(decided?).await }
                .into_actor(self)
                .map(move |res, act, _ctx| {
                    let committed = res?;
                    let addr = act.namespace(&name)?;
                    drop(addr);
                    let namespace = act
                        .writer
                        .state()
                        .read()
                        .namespaces
                        .get(&name)
                        .cloned()
                        .ok_or_else(|| {
                            EngineError::Internal("created namespace vanished".into())
                        })?;
                    Ok(NamespaceReply {
                        namespace,
                        seq: committed.last_seq(),
                    })
                }),
        ))
    }
}

impl Handler<DeleteNamespace> for Supervisor {
    type Result = AtomicResponse<Self, Result<u64, EngineError>>;

    fn handle(&mut self, msg: DeleteNamespace, _ctx: &mut Self::Context) -> Self::Result {
        let name = msg.name.clone();
        let addr = self.namespace(&msg.name);
        AtomicResponse::new(Box::pin(
            async move {
                addr?
                    .send(msg)
                    .await
                    .map_err(|_| EngineError::Unavailable("namespace actor stopped".into()))?
            }
            .into_actor(self)
            .map(move |res, act, _ctx| {
                if res.is_ok() {
                    act.namespaces.remove(&name);
                }
                res
            }),
        ))
    }
}

impl Handler<CountActors> for Supervisor {
    type Result = usize;

    fn handle(&mut self, _msg: CountActors, _ctx: &mut Self::Context) -> usize {
        self.namespaces.retain(|_, a| a.connected());
        self.namespaces.len()
    }
}
