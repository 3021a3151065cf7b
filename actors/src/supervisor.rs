//! The supervisor: holds `id → Addr` of every entity actor, spawns them on demand and
//! routes commands. Creation goes through here so that uniqueness is decided by one
//! actor at a time.

use std::collections::HashMap;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, AtomicResponse, Context, Handler, WrapFuture,
};
use berth_engine::container::{
    ContainerConfig, ContainerId, MountKind, NetworkMode, DEFAULT_STOP_TIMEOUT_SECS,
};
use berth_engine::ids::NamespaceName;
use berth_engine::{decide, Command, EngineError};
use chrono::Utc;

use crate::container::{ContainerActor, ContainerEnv, Created};
use crate::messages::{
    CollectGarbage, CommitSnapshot, CommitStorage, CountActors, CreateNamespace, DeleteImage,
    DeleteNamespace, Materialize, NamespaceReply, PrepareSnapshot, RemoveSnapshot, RemoveStorage,
    SnapshotReply,
};
use crate::messages::{
    ContainerRequest, ContainersReconciled, CreateContainer, GetContainer, Provision,
    ReconcileContainers, RecoverContainer,
};
use crate::namespace::NamespaceActor;
use crate::snapshot::SnapshotActor;
use crate::storage::Stores;
use crate::WriterHandle;

/// The supervisor actor.
pub struct Supervisor {
    writer: WriterHandle,
    stores: Stores,
    namespaces: HashMap<NamespaceName, Addr<NamespaceActor>>,
    snapshots: HashMap<(NamespaceName, String), Addr<SnapshotActor>>,
    containers: HashMap<ContainerId, Addr<ContainerActor>>,
    /// Pulls in flight by (namespace, reference, platform): one actor per pull.
    pulls: HashMap<(NamespaceName, String, String), Addr<crate::pull::PullActor>>,
    env: ContainerEnv,
    registry: berth_engine::registry::RegistryClient,
    notices: crate::notice::NoticeBus,
}

impl Supervisor {
    /// A supervisor over the writer and the stores, pulling with `registry`.
    pub fn new(
        writer: WriterHandle,
        stores: Stores,
        env: ContainerEnv,
        registry: berth_engine::registry::RegistryClient,
    ) -> Self {
        Supervisor {
            writer,
            stores,
            namespaces: HashMap::new(),
            snapshots: HashMap::new(),
            containers: HashMap::new(),
            pulls: HashMap::new(),
            env,
            registry,
            notices: crate::notice::bus(1),
        }
    }

    pub(crate) fn writer(&self) -> &WriterHandle {
        &self.writer
    }

    pub(crate) fn env(&self) -> &ContainerEnv {
        &self.env
    }

    /// Publishes pull progress on `bus` (for the event stream).
    pub fn with_notices(mut self, bus: crate::notice::NoticeBus) -> Self {
        self.notices = bus;
        self
    }

    /// The actor of an existing container, spawned if it is not running.
    fn container(
        &mut self,
        ns: &NamespaceName,
        id: &ContainerId,
        me: Addr<Supervisor>,
    ) -> Result<Addr<ContainerActor>, EngineError> {
        if self.writer.state().read().container(ns, id).is_none() {
            self.containers.remove(id);
            return Err(EngineError::NotFound {
                kind: "container",
                id: id.to_string(),
            });
        }
        if let Some(addr) = self.containers.get(id) {
            if addr.connected() {
                return Ok(addr.clone());
            }
        }
        let addr = ContainerActor::new(
            ns.clone(),
            id.clone(),
            self.env.clone(),
            self.writer.clone(),
            self.stores.clone(),
            me,
        )
        .start();
        self.containers.insert(id.clone(), addr.clone());
        Ok(addr)
    }

    /// The actor of an existing snapshot, spawned if it is not running.
    fn snapshot(
        &mut self,
        ns: &NamespaceName,
        key: &str,
    ) -> Result<Addr<SnapshotActor>, EngineError> {
        let id = match self.writer.state().read().storage.snapshot(ns, key) {
            Some(s) => s.id,
            None => {
                self.snapshots.remove(&(ns.clone(), key.to_string()));
                return Err(EngineError::NotFound {
                    kind: "snapshot",
                    id: key.to_string(),
                });
            }
        };
        let k = (ns.clone(), key.to_string());
        if let Some(addr) = self.snapshots.get(&k) {
            if addr.connected() {
                return Ok(addr.clone());
            }
        }
        let addr = SnapshotActor::new(
            ns.clone(),
            key.to_string(),
            id,
            self.stores.clone(),
            self.writer.clone(),
        )
        .start();
        self.snapshots.insert(k, addr.clone());
        Ok(addr)
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

impl Handler<crate::messages::StartImport> for Supervisor {
    type Result = Result<Addr<crate::import::ImportActor>, EngineError>;

    fn handle(
        &mut self,
        msg: crate::messages::StartImport,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        if !self
            .writer
            .state()
            .read()
            .namespaces
            .contains_key(&msg.namespace)
        {
            return Err(EngineError::NotFound {
                kind: "namespace",
                id: msg.namespace.to_string(),
            });
        }
        Ok(crate::import::ImportActor::new(
            msg.namespace,
            msg.name,
            msg.platform,
            self.writer.clone(),
            self.stores.clone(),
            ctx.address(),
        )
        .start())
    }
}

impl Handler<crate::messages::StartPull> for Supervisor {
    type Result = actix::ResponseFuture<Result<crate::messages::PullTicket, EngineError>>;

    /// Joins the pull of the same reference and platform in the namespace when one is
    /// in flight, else starts one.
    fn handle(&mut self, msg: crate::messages::StartPull, ctx: &mut Self::Context) -> Self::Result {
        let req = msg.0;
        if !self
            .writer
            .state()
            .read()
            .namespaces
            .contains_key(&req.namespace)
        {
            let ns = req.namespace.to_string();
            return Box::pin(async move {
                Err(EngineError::NotFound {
                    kind: "namespace",
                    id: ns,
                })
            });
        }
        self.pulls.retain(|_, a| a.connected());
        let key = (
            req.namespace.clone(),
            req.reference.to_string(),
            req.platform.to_string(),
        );
        let addr = match self.pulls.get(&key) {
            Some(a) => a.clone(),
            None => {
                let a = crate::pull::PullActor::new(
                    req,
                    self.writer.clone(),
                    self.stores.clone(),
                    ctx.address(),
                    self.registry.clone(),
                )
                .start();
                self.pulls.insert(key.clone(), a.clone());
                // Forward the pull's progress to the event stream's notices.
                let (bus, actor) = (self.notices.clone(), a.clone());
                actix::spawn(async move {
                    let Ok(mut ticket) = actor.send(crate::messages::JoinPull).await else {
                        return;
                    };
                    use tokio::sync::broadcast::error::RecvError;
                    loop {
                        match ticket.progress.recv().await {
                            Ok(p) => {
                                let n = crate::notice::pull_progress(
                                    key.0.as_str(),
                                    &ticket.id,
                                    &key.1,
                                    &p,
                                );
                                let _ = bus.send(std::sync::Arc::new(n));
                            }
                            Err(RecvError::Lagged(_)) => {}
                            Err(RecvError::Closed) => break,
                        }
                    }
                });
                a
            }
        };
        Box::pin(async move {
            addr.send(crate::messages::JoinPull).await.map_err(|_| {
                EngineError::Unavailable("the pull ended while joining it; pull again".into())
            })
        })
    }
}

impl Handler<CountActors> for Supervisor {
    type Result = usize;

    fn handle(&mut self, _msg: CountActors, _ctx: &mut Self::Context) -> usize {
        self.namespaces.retain(|_, a| a.connected());
        self.snapshots.retain(|_, a| a.connected());
        self.containers.retain(|_, a| a.connected());
        self.pulls.retain(|_, a| a.connected());
        self.namespaces.len() + self.snapshots.len() + self.containers.len() + self.pulls.len()
    }
}

fn mailbox(_: actix::MailboxError) -> EngineError {
    EngineError::Unavailable("a snapshot actor stopped".into())
}

impl Handler<PrepareSnapshot> for Supervisor {
    type Result = AtomicResponse<Self, Result<SnapshotReply, EngineError>>;

    fn handle(&mut self, msg: PrepareSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        let decided = decide(
            &self.writer.state().read(),
            Command::PrepareSnapshot {
                namespace: msg.namespace.clone(),
                key: msg.key.clone(),
                parent: msg.parent.clone(),
                kind: msg.kind,
                snapshotter: self.stores.snapshotter.name().to_string(),
                labels: msg.labels.clone(),
                at: Utc::now(),
            },
        );
        let writer = self.writer.clone();
        let (ns, key) = (msg.namespace.clone(), msg.key.clone());
        AtomicResponse::new(Box::pin(
            async move { writer.append(decided?).await }
                .into_actor(self)
                .then(move |res, act, _ctx| {
                    let started = res.and_then(|_| {
                        let parents = act
                            .writer
                            .state()
                            .read()
                            .storage
                            .parent_ids(&ns, msg.parent.as_deref());
                        Ok((act.snapshot(&ns, &key)?, parents))
                    });
                    let writer = act.writer.clone();
                    async move {
                        let (addr, parents) = started?;
                        let (mounts, seq) = addr
                            .send(Materialize {
                                kind: msg.kind,
                                parents,
                            })
                            .await
                            .map_err(mailbox)??;
                        let snapshot = writer
                            .state()
                            .read()
                            .storage
                            .snapshot(&ns, &key)
                            .cloned()
                            .ok_or_else(|| {
                            EngineError::Internal("prepared snapshot vanished".into())
                        })?;
                        Ok(SnapshotReply {
                            snapshot,
                            mounts,
                            seq,
                        })
                    }
                    .into_actor(act)
                }),
        ))
    }
}

impl Handler<CommitSnapshot> for Supervisor {
    type Result = AtomicResponse<Self, Result<u64, EngineError>>;

    fn handle(&mut self, msg: CommitSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        let decided = decide(
            &self.writer.state().read(),
            Command::CommitSnapshot {
                namespace: msg.namespace.clone(),
                key: msg.key.clone(),
                name: msg.name.clone(),
            },
        );
        let addr =
            decided.and_then(|events| Ok((self.snapshot(&msg.namespace, &msg.key)?, events)));
        let (ns, key, name) = (msg.namespace, msg.key, msg.name);
        AtomicResponse::new(Box::pin(
            async move {
                let (addr, events) = addr?;
                let seq = addr
                    .send(CommitStorage {
                        name: name.clone(),
                        events,
                    })
                    .await
                    .map_err(mailbox)??;
                Ok((addr, seq, name))
            }
            .into_actor(self)
            .map(move |res: Result<_, EngineError>, act, _ctx| {
                let (addr, seq, name) = res?;
                act.snapshots.remove(&(ns.clone(), key));
                act.snapshots.insert((ns, name), addr);
                Ok(seq)
            }),
        ))
    }
}

impl Handler<RemoveSnapshot> for Supervisor {
    type Result = AtomicResponse<Self, Result<u64, EngineError>>;

    fn handle(&mut self, msg: RemoveSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        let decided = decide(
            &self.writer.state().read(),
            Command::RemoveSnapshot {
                namespace: msg.namespace.clone(),
                key: msg.key.clone(),
                reason: "removed".into(),
            },
        );
        let addr =
            decided.and_then(|events| Ok((self.snapshot(&msg.namespace, &msg.key)?, events)));
        let k = (msg.namespace, msg.key);
        AtomicResponse::new(Box::pin(
            async move {
                let (addr, events) = addr?;
                addr.send(RemoveStorage { events }).await.map_err(mailbox)?
            }
            .into_actor(self)
            .map(move |res, act, _ctx| {
                if res.is_ok() {
                    act.snapshots.remove(&k);
                }
                res
            }),
        ))
    }
}

impl Handler<DeleteImage> for Supervisor {
    type Result = AtomicResponse<Self, Result<u64, EngineError>>;

    fn handle(&mut self, msg: DeleteImage, ctx: &mut Self::Context) -> Self::Result {
        let decided = decide(
            &self.writer.state().read(),
            Command::DeleteImage {
                namespace: msg.namespace.clone(),
                name: msg.name,
            },
        );
        let writer = self.writer.clone();
        let ns = msg.namespace;
        let me = ctx.address();
        AtomicResponse::new(Box::pin(
            async move {
                let seq = writer.append(decided?).await?.last_seq();
                // What only this image referenced goes now, in the background.
                me.do_send(CollectGarbage { namespace: ns });
                Ok(seq)
            }
            .into_actor(self),
        ))
    }
}

impl Handler<CollectGarbage> for Supervisor {
    type Result = AtomicResponse<Self, Result<berth_engine::event::GcCompleted, EngineError>>;

    fn handle(&mut self, msg: CollectGarbage, _ctx: &mut Self::Context) -> Self::Result {
        let writer = self.writer.clone();
        let stores = self.stores.clone();
        AtomicResponse::new(Box::pin(
            async move { crate::gc::collect(writer, stores, msg.namespace).await }
                .into_actor(self)
                .map(|res, act, _ctx| {
                    let state = act.writer.state().read();
                    act.snapshots.retain(|(ns, key), a| {
                        a.connected() && state.storage.snapshot(ns, key).is_some()
                    });
                    res
                }),
        ))
    }
}

impl Supervisor {
    /// Resolves `--network`: a network's name, `bridge` (the default network), `none`,
    /// `host` or `container:<id, name or prefix>` (of the same namespace); the default
    /// network when absent.
    fn network_mode(
        &self,
        ns: &NamespaceName,
        raw: Option<&str>,
    ) -> Result<NetworkMode, EngineError> {
        let default = || NetworkMode::Bridge {
            network: self.env.network.default_network.clone(),
        };
        Ok(match raw {
            None | Some("bridge") | Some("default") => default(),
            Some("") => return Err(EngineError::InvalidArgument(
                "network must not be empty (bridge, none, host, container:<id> or a network name)"
                    .into(),
            )),
            Some("none") => NetworkMode::None,
            Some("host") => NetworkMode::Host,
            Some(other) => match other.strip_prefix("container:") {
                Some(key) => {
                    let state = self.writer.state().read();
                    let target = state.find_container(ns, key)?;
                    if let NetworkMode::Container { .. } = target.config.network {
                        return Err(EngineError::InvalidArgument(format!(
                            "container {} itself joins another container's network; join that one",
                            target.name
                        )));
                    }
                    NetworkMode::Container {
                        id: target.id.clone(),
                    }
                }
                None => NetworkMode::Bridge {
                    network: other.to_string(),
                },
            },
        })
    }

    /// Completes a creation request: resolves the image (manifest digest, config, top
    /// layer's snapshot), checks mounts and runtime.
    fn container_config(
        &self,
        ns: &NamespaceName,
        req: ContainerRequest,
    ) -> Result<(ContainerConfig, Provision), EngineError> {
        let target = self
            .writer
            .state()
            .read()
            .storage
            .image(ns, &req.image)
            .map(|i| i.target.clone())
            .ok_or_else(|| EngineError::NotFound {
                kind: "image",
                id: req.image.to_string(),
            })?;
        let platform = berth_engine::image::Platform::host();
        let (digest, _manifest, image_config) =
            crate::import::resolve(&self.stores, &target, &platform)?;
        let top = image_config.chain_ids().last().cloned().ok_or_else(|| {
            EngineError::FailedPrecondition(format!("image {} has no layers", req.image))
        })?;
        let unpacked = self
            .writer
            .state()
            .read()
            .storage
            .snapshot(ns, top.as_str())
            .is_some_and(|s| s.kind == berth_engine::snapshot::Kind::Committed);
        if !unpacked {
            return Err(EngineError::FailedPrecondition(format!(
                "image {} is not unpacked for {platform}; import or pull it again",
                req.image
            )));
        }
        for m in &req.mounts {
            if m.kind == MountKind::Bind && !std::path::Path::new(&m.source).exists() {
                return Err(EngineError::InvalidArgument(format!(
                    "bind mount source {:?} does not exist",
                    m.source
                )));
            }
        }
        let runtime = req
            .runtime
            .clone()
            .unwrap_or_else(|| self.env.default_runtime.clone());
        self.env.runtime_binary(&runtime)?;
        let stop_signal = req
            .stop_signal
            .clone()
            .or_else(|| image_config.stop_signal().map(str::to_string));
        if let Some(s) = &stop_signal {
            berth_engine::container::parse_signal(s)?;
        }
        let network = self.network_mode(ns, req.network.as_deref())?;
        for p in &req.ports {
            if p.host_port == 0 || p.container_port == 0 {
                return Err(EngineError::InvalidArgument(format!(
                    "invalid published port {p}: ports are 1 to 65535"
                )));
            }
        }
        let config = ContainerConfig {
            image: req.image,
            image_digest: digest,
            entrypoint: req.entrypoint,
            cmd: req.cmd,
            env: req.env,
            working_dir: req.working_dir,
            user: req.user,
            hostname: req.hostname,
            labels: req.labels,
            mounts: req.mounts,
            read_only: req.read_only,
            resources: req.resources,
            restart: req.restart,
            runtime,
            stop_timeout: req.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT_SECS),
            stop_signal,
            network,
            ports: req.ports,
        };
        Ok((
            config,
            Provision {
                image_config,
                parent: top.to_string(),
            },
        ))
    }
}

impl Handler<CreateContainer> for Supervisor {
    type Result = AtomicResponse<Self, Result<Created, EngineError>>;

    fn handle(&mut self, msg: CreateContainer, ctx: &mut Self::Context) -> Self::Result {
        let id = ContainerId::generate();
        let ns = msg.namespace.clone();
        let decided =
            self.container_config(&msg.namespace, msg.request)
                .and_then(|(config, provision)| {
                    let events = decide(
                        &self.writer.state().read(),
                        Command::CreateContainer {
                            namespace: msg.namespace,
                            id: id.clone(),
                            name: msg.name,
                            config: Box::new(config),
                            at: Utc::now(),
                        },
                    )?;
                    Ok((events, provision))
                });
        let writer = self.writer.clone();
        let me = ctx.address();
        AtomicResponse::new(Box::pin(
            async move {
                let (events, provision) = decided?;
                writer.append(events).await?;
                Ok(provision)
            }
            .into_actor(self)
            .map(move |res: Result<Provision, EngineError>, act, _ctx| {
                let provision = res?;
                Ok((act.container(&ns, &id, me)?, provision))
            }),
        ))
    }
}

impl Handler<GetContainer> for Supervisor {
    type Result = Result<(ContainerId, Addr<ContainerActor>), EngineError>;

    fn handle(&mut self, msg: GetContainer, ctx: &mut Self::Context) -> Self::Result {
        let id = self
            .writer
            .state()
            .read()
            .find_container(&msg.namespace, &msg.key)?
            .id
            .clone();
        let addr = self.container(&msg.namespace, &id, ctx.address())?;
        Ok((id, addr))
    }
}

impl Handler<ReconcileContainers> for Supervisor {
    type Result = actix::ResponseFuture<Result<ContainersReconciled, EngineError>>;

    fn handle(&mut self, _msg: ReconcileContainers, ctx: &mut Self::Context) -> Self::Result {
        let all: Vec<(NamespaceName, ContainerId)> = self
            .writer
            .state()
            .read()
            .containers
            .values()
            .map(|c| (c.namespace.clone(), c.id.clone()))
            .collect();
        let mut actors = Vec::new();
        for (ns, id) in all {
            match self.container(&ns, &id, ctx.address()) {
                Ok(a) => actors.push((id, a)),
                Err(e) => tracing::warn!(container = %id, error = %e, "cannot recover container"),
            }
        }
        // Runtime state of containers the journal no longer knows (a shim that died
        // while letting go of a deleted container) is removed.
        let known: std::collections::HashSet<String> = self
            .writer
            .state()
            .read()
            .containers
            .keys()
            .map(ContainerId::to_string)
            .collect();
        let janitor = self
            .env
            .runtime_binary(&self.env.default_runtime)
            .map(|b| berth_engine::runtime::Runc::new(b.to_path_buf(), self.env.runtime_root()));
        let runtime_root = self.env.runtime_root();
        let (env, writer) = (self.env.clone(), self.writer.clone());
        Box::pin(async move {
            if let (Ok(runc), true) = (janitor, runtime_root.exists()) {
                let _ = crate::storage::blocking(move || {
                    use berth_engine::runtime::Runtime;
                    for s in runc.list().unwrap_or_default() {
                        if !known.contains(&s.id) {
                            tracing::info!(id = %s.id, "removing runtime state of an unknown container");
                            let _ = runc.delete(&s.id, true);
                        }
                    }
                    Ok(())
                })
                .await;
            }
            let mut total = ContainersReconciled::default();
            let net_env = env.clone();
            let net_state = writer.state().clone();
            for (id, addr) in actors {
                match addr.send(RecoverContainer).await {
                    Ok(Ok(r)) => {
                        total.reattached += r.reattached;
                        total.exited += r.exited;
                        total.lost += r.lost;
                        total.settled += r.settled;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(container = %id, error = %e, "recovering container failed")
                    }
                    Err(_) => {
                        tracing::warn!(container = %id, "container actor stopped while recovering")
                    }
                }
            }
            // Namespaces and leases that no recorded container holds (a crash between
            // a CNI call and its event, or state from before a journal was lost).
            let cleaned = crate::storage::blocking(move || {
                Ok(crate::container::net::janitor(&net_env, &net_state.read()))
            })
            .await;
            if let Ok((namespaces, leases)) = cleaned {
                if namespaces + leases > 0 {
                    tracing::info!(namespaces, leases, "stale network state removed");
                }
            }
            Ok(total)
        })
    }
}
