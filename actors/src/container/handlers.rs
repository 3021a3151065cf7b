//! One handler per verb, each the same shape: decide the intent against the state,
//! append it, carry out the effect through the shim (or the files), append the outcome.
//! Lifecycle handlers are atomic (one at a time per container); wait and exec are not,
//! so a long exec never holds up a stop.

use std::path::PathBuf;
use std::time::Duration;

use actix::{
    ActorContext, ActorFutureExt, AsyncContext, AtomicResponse, Context, Handler, Message,
    ResponseActFuture, ResponseFuture, WrapFuture,
};
use berth_engine::container::ExitStatus;
use berth_engine::event::{
    ContainerExited, ContainerFailed, ContainerRef, ContainerRestartScheduled, ContainerSignal,
    ContainerStarted, Event,
};
use berth_engine::mount::Mount;
use berth_engine::shim::proto::{ExecOutput, Request, Response};
use berth_engine::state::{Container, Status};
use berth_engine::{decide, Command, EngineError};
use chrono::Utc;

use super::shim::{self, answer_error, expect_ok, CallError, CONTROL_TIMEOUT};
use super::{fs, restart_delay, ContainerActor};
use crate::messages::{
    ContainerReply, DeleteContainer, ExecInContainer, KillContainer, PauseContainer, Provision,
    RemoveSnapshot, ResumeContainer, StartContainer, StopContainer, WaitContainer,
};
use crate::storage::blocking;

type Reply = Result<ContainerReply, EngineError>;

/// The watcher saw the shim answer wait (or vanish).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ShimExited {
    pub(crate) shim_pid: u32,
    pub(crate) exit: Option<ExitStatus>,
    pub(crate) reason: Option<String>,
}

/// The restart policy's back-off has passed.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RestartNow;

fn boxed<T: 'static>(v: T) -> ResponseActFuture<ContainerActor, T> {
    Box::pin(actix::fut::ready(v))
}

fn mailbox(_: actix::MailboxError) -> EngineError {
    EngineError::Unavailable("the supervisor stopped".into())
}

impl ContainerActor {
    fn decide(&self, cmd: Command) -> Result<Vec<Event>, EngineError> {
        decide(&self.writer.state().read(), cmd)
    }

    fn socket(&self) -> PathBuf {
        self.env.socket(&self.id)
    }

    pub(crate) fn reference(&self) -> ContainerRef {
        ContainerRef {
            namespace: self.namespace.clone(),
            id: self.id.clone(),
            at: Utc::now(),
        }
    }

    pub(crate) fn failed(&self, action: &str, reason: String) -> ContainerFailed {
        ContainerFailed {
            namespace: self.namespace.clone(),
            id: self.id.clone(),
            action: action.to_string(),
            reason,
            at: Utc::now(),
        }
    }

    /// The rootfs mounts of the container's snapshot.
    fn mounts(&self, c: &Container) -> Result<Vec<Mount>, EngineError> {
        let state = self.writer.state().read();
        let snap = state
            .storage
            .snapshot(&self.namespace, &c.snapshot_key)
            .ok_or_else(|| {
                EngineError::Internal(format!(
                    "the snapshot {} of container {} is missing",
                    c.snapshot_key, c.name
                ))
            })?;
        let parents = state
            .storage
            .parent_ids(&self.namespace, snap.parent.as_deref());
        self.stores.snapshotter.mounts(snap.id, snap.kind, &parents)
    }

    /// Follows the shim until the container exits (or the shim vanishes).
    pub(crate) fn watch(&self, ctx: &mut Context<Self>, shim_pid: u32) {
        let socket = self.socket();
        let me = ctx.address();
        ctx.spawn(
            async move {
                let (exit, reason) = match shim::call(socket, Request::Wait, None).await {
                    Ok(Response::Exited(e)) => (Some(e), None),
                    Ok(other) => (None, Some(format!("the shim answered wait with {other:?}"))),
                    Err(CallError::Gone(m) | CallError::Failed(m)) => (None, Some(m)),
                };
                me.do_send(ShimExited {
                    shim_pid,
                    exit,
                    reason,
                });
            }
            .into_actor(self),
        );
    }

    /// Starts (or restarts) the container: intent, shim launch (which creates and
    /// starts it: `runc run --detach`), outcome; then watches it.
    pub(crate) fn start_flow(&mut self) -> ResponseActFuture<Self, Reply> {
        let prep = self
            .decide(Command::StartContainer {
                namespace: self.namespace.clone(),
                id: self.id.clone(),
                at: Utc::now(),
            })
            .and_then(|events| {
                let c = self.current()?;
                let runtime = self.env.runtime_binary(&c.config.runtime)?.to_path_buf();
                let mounts = self.mounts(&c)?;
                let net = super::net::spec_net(&self.env, &self.writer.state().read(), &c);
                Ok((events, runtime, mounts, c, net))
            });
        let (writer, env, id, socket, stores) = (
            self.writer.clone(),
            self.env.clone(),
            self.id.clone(),
            self.socket(),
            self.stores.clone(),
        );
        let (namespace, failed) = (self.namespace.clone(), self.failed("start", String::new()));
        Box::pin(
            async move {
                let (events, runtime, mounts, container, net) = prep?;
                writer.append(events).await?;
                // The last run's shim (holding its exit) goes first.
                let _ = shim::call(
                    socket.clone(),
                    Request::Shutdown { force: true },
                    Some(CONTROL_TIMEOUT),
                )
                .await;
                // The network first; then the shim creates and starts the container
                // (`runc run --detach`) before it reports.
                let started = async {
                    super::net::up(&writer, &env, &container).await?;
                    let (env, stores) = (env.clone(), stores.clone());
                    blocking(move || {
                        fs::launch(&env, &stores, &container, &runtime, &mounts, &net)
                    })
                    .await
                    .map(|l| (l.init_pid, l.shim_pid))
                }
                .await;
                match started {
                    Ok((pid, shim_pid)) => {
                        let c = writer
                            .append(vec![Event::ContainerStarted(ContainerStarted {
                                namespace,
                                id,
                                pid,
                                shim_pid,
                                at: Utc::now(),
                            })])
                            .await?;
                        Ok((c.last_seq(), shim_pid))
                    }
                    Err(e) => {
                        let _ = shim::call(
                            socket.clone(),
                            Request::Shutdown { force: true },
                            Some(CONTROL_TIMEOUT),
                        )
                        .await;
                        if let Err(d) = super::net::release(&writer, &env, &namespace, &id).await {
                            tracing::warn!(container = %id, error = %d, "network down after a failed start");
                        }
                        writer
                            .append(vec![Event::ContainerStartFailed(ContainerFailed {
                                reason: e.to_string(),
                                at: Utc::now(),
                                ..failed
                            })])
                            .await?;
                        Err(e)
                    }
                }
            }
            .into_actor(self)
            .map(|res, act, ctx| {
                let (seq, shim_pid) = res?;
                act.watch(ctx, shim_pid);
                act.reply(seq)
            }),
        )
    }

    /// Records an exit (once per run), answers waiters and applies the restart policy.
    pub(crate) fn record_exit(
        &mut self,
        exit: ExitStatus,
        reason: Option<String>,
    ) -> ResponseActFuture<Self, Result<u64, EngineError>> {
        let c = match self.current() {
            Ok(c) => c,
            Err(e) => return boxed(Err(e)),
        };
        if !c.status.is_live() && c.pending.as_deref() != Some("start") {
            return boxed(Ok(self.writer.state().read().seq));
        }
        let restart =
            c.config
                .restart
                .should_restart(exit.code, c.restart_count, c.stopped_by_user);
        let attempt = c.restart_count.saturating_add(1);
        let delay = restart_delay(attempt);
        let mut events = vec![Event::ContainerExited(ContainerExited {
            namespace: self.namespace.clone(),
            id: self.id.clone(),
            exit: exit.clone(),
            reason,
        })];
        if restart {
            events.push(Event::ContainerRestartScheduled(
                ContainerRestartScheduled {
                    namespace: self.namespace.clone(),
                    id: self.id.clone(),
                    attempt,
                    delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    at: Utc::now(),
                },
            ));
        }
        let writer = self.writer.clone();
        let socket = self.socket();
        let (env, namespace, id) = (self.env.clone(), self.namespace.clone(), self.id.clone());
        let appender = writer.clone();
        Box::pin(
            async move { appender.append(events).await }
                .into_actor(self)
                .then(move |res, act, ctx| {
                    let seq = res.map(|c| c.last_seq());
                    if seq.is_ok() {
                        for w in act.waiters.drain(..) {
                            let _ = w.send(Some(exit.clone()));
                        }
                        if restart {
                            ctx.run_later(delay, |_, ctx| ctx.notify(RestartNow));
                        }
                    }
                    async move {
                        if seq.is_ok() {
                            // The exit is durable in the journal: the shim's work is done.
                            // Letting it go keeps stopped containers from costing a process
                            // each. Awaited (inside this atomic handler) so that no later
                            // operation on the container races the shim's own clean-up.
                            let _ = shim::call(
                                socket,
                                Request::Shutdown { force: false },
                                Some(CONTROL_TIMEOUT),
                            )
                            .await;
                            // Its address, veth and namespace go with the process
                            // (attached again at the next start). A failure leaves
                            // the attachment recorded, so deletion or the next
                            // daemon start retries.
                            if let Err(e) = super::net::release(&writer, &env, &namespace, &id).await {
                                tracing::warn!(container = %id, error = %e, "detaching the network after exit");
                            }
                        }
                        seq
                    }
                    .into_actor(act)
                }),
        )
    }

    /// The shim is gone: the exit it recorded, or what the runtime still knows (a
    /// container left running without its shim is killed: nobody could supervise it).
    pub(crate) fn settle_lost(
        &mut self,
        why: Option<String>,
    ) -> ResponseActFuture<Self, Result<(u64, bool), EngineError>> {
        let c = match self.current() {
            Ok(c) => c,
            Err(e) => return boxed(Err(e)),
        };
        let (env, id) = (self.env.clone(), self.id.clone());
        let runtime = self
            .env
            .runtime_binary(&c.config.runtime)
            .map(|p| p.to_path_buf());
        Box::pin(
            blocking(move || {
                if let Some(exit) = fs::read_exit(&env, &id) {
                    return Ok((exit, None, false));
                }
                let killed = fs::reap_orphan(&env, &runtime?, &id);
                let mut reason = "shim lost without an exit record".to_string();
                if let Some(w) = why {
                    reason.push_str(&format!(" ({w})"));
                }
                if killed {
                    reason.push_str("; the container was still running and was killed");
                }
                let unknown = ExitStatus {
                    code: None,
                    signal: None,
                    oom_killed: false,
                    at: Utc::now(),
                };
                Ok((unknown, Some(reason), true))
            })
            .into_actor(self)
            .then(|res, act, _ctx| match res {
                Ok((exit, reason, lost)) => Box::pin(
                    act.record_exit(exit, reason)
                        .map(move |r, _, _| r.map(|s| (s, lost))),
                ) as ResponseActFuture<Self, _>,
                Err(e) => boxed(Err(e)),
            }),
        )
    }

    /// Removes everything of the container after its delete intent, then records the
    /// outcome and stops the actor.
    pub(crate) fn delete_effects(&mut self) -> ResponseActFuture<Self, Result<u64, EngineError>> {
        let c = match self.current() {
            Ok(c) => c,
            Err(e) => return boxed(Err(e)),
        };
        let (env, id, socket) = (self.env.clone(), self.id.clone(), self.socket());
        let runtime = self
            .env
            .runtime_binary(&c.config.runtime)
            .map(|p| p.to_path_buf());
        let (supervisor, writer) = (self.supervisor.clone(), self.writer.clone());
        let (namespace, key, done) = (
            self.namespace.clone(),
            c.snapshot_key.clone(),
            self.reference(),
        );
        Box::pin(
            async move {
                match shim::call(
                    socket,
                    Request::Shutdown { force: true },
                    Some(CONTROL_TIMEOUT),
                )
                .await
                {
                    Ok(Response::Ok) | Err(CallError::Gone(_)) => {}
                    Ok(other) => tracing::warn!(container = %id, ?other, "shim shutdown refused"),
                    Err(CallError::Failed(m)) => {
                        tracing::warn!(container = %id, m, "shim shutdown failed")
                    }
                }
                {
                    let (env, id) = (env.clone(), id.clone());
                    blocking(move || {
                        if let Ok(runtime) = runtime {
                            fs::reap_orphan(&env, &runtime, &id);
                        }
                        Ok(())
                    })
                    .await?;
                }
                super::net::release(&writer, &env, &namespace, &id).await?;
                {
                    let (env, id) = (env.clone(), id.clone());
                    blocking(move || fs::teardown(&env, &id, true)).await?;
                }
                match supervisor
                    .send(RemoveSnapshot { namespace, key })
                    .await
                    .map_err(mailbox)?
                {
                    Ok(_) => {}
                    Err(EngineError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
                Ok(writer
                    .append(vec![Event::ContainerDeleted(done)])
                    .await?
                    .last_seq())
            }
            .into_actor(self)
            .map(|res, act, ctx| {
                if res.is_ok() {
                    for w in act.waiters.drain(..) {
                        let _ = w.send(None);
                    }
                    ctx.stop();
                }
                res
            }),
        )
    }

    /// Undoes an interrupted or failed creation: files, snapshot, then the outcome.
    pub(crate) fn undo_create(
        &mut self,
        reason: String,
    ) -> ResponseActFuture<Self, Result<u64, EngineError>> {
        let c = match self.current() {
            Ok(c) => c,
            Err(e) => return boxed(Err(e)),
        };
        let (env, id) = (self.env.clone(), self.id.clone());
        let (supervisor, writer) = (self.supervisor.clone(), self.writer.clone());
        let (namespace, key) = (self.namespace.clone(), c.snapshot_key.clone());
        let failed = self.failed("create", reason);
        Box::pin(
            async move {
                blocking(move || fs::teardown(&env, &id, true)).await?;
                match supervisor
                    .send(RemoveSnapshot { namespace, key })
                    .await
                    .map_err(mailbox)?
                {
                    Ok(_) | Err(EngineError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
                Ok(writer
                    .append(vec![Event::ContainerCreateFailed(failed)])
                    .await?
                    .last_seq())
            }
            .into_actor(self)
            .map(|res, _act, ctx| {
                if res.is_ok() {
                    ctx.stop();
                }
                res
            }),
        )
    }

    /// A simple request to the shim (pause, resume, kill) between its intent and its
    /// outcome.
    fn control(
        &mut self,
        intent: Result<Vec<Event>, EngineError>,
        req: Request,
        action: &'static str,
        outcome: Event,
    ) -> ResponseActFuture<Self, Reply> {
        let intent = match intent {
            Ok(events) => events,
            Err(e) => return boxed(Err(e)),
        };
        let (writer, socket) = (self.writer.clone(), self.socket());
        let failed = self.failed(action, String::new());
        Box::pin(
            async move {
                writer.append(intent).await?;
                let res = match shim::call(socket, req, Some(CONTROL_TIMEOUT)).await {
                    Ok(resp) => expect_ok(resp),
                    Err(e) => Err(e.into_engine()),
                };
                match res {
                    Ok(()) => Ok(writer.append(vec![outcome]).await?.last_seq()),
                    Err(e) => {
                        writer
                            .append(vec![Event::ContainerRequestFailed(ContainerFailed {
                                reason: e.to_string(),
                                ..failed
                            })])
                            .await?;
                        Err(e)
                    }
                }
            }
            .into_actor(self)
            .map(|res, act, _| act.reply(res?)),
        )
    }
}

impl Handler<Provision> for ContainerActor {
    type Result = AtomicResponse<Self, Reply>;

    fn handle(&mut self, msg: Provision, _ctx: &mut Self::Context) -> Self::Result {
        let c = match self.current() {
            Ok(c) => c,
            Err(e) => return AtomicResponse::new(boxed(Err(e))),
        };
        let (supervisor, env) = (self.supervisor.clone(), self.env.clone());
        let prepare = crate::messages::PrepareSnapshot {
            namespace: self.namespace.clone(),
            key: c.snapshot_key.clone(),
            parent: Some(msg.parent),
            kind: berth_engine::snapshot::Kind::Active,
            labels: fs::snapshot_labels(&self.namespace, &self.id),
        };
        let image = msg.image_config;
        let net = super::net::spec_net(&env, &self.writer.state().read(), &c);
        AtomicResponse::new(Box::pin(
            async move {
                let snap = supervisor.send(prepare).await.map_err(mailbox)??;
                blocking(move || fs::provision(&env, &c, &image, &snap.mounts, &net)).await
            }
            .into_actor(self)
            .then(|res, act, _ctx| match res {
                Ok(()) => {
                    let writer = act.writer.clone();
                    let created = Event::ContainerCreated(act.reference());
                    Box::pin(
                        async move { writer.append(vec![created]).await }
                            .into_actor(act)
                            .map(|res, act, _| act.reply(res?.last_seq())),
                    ) as ResponseActFuture<Self, Reply>
                }
                Err(e) => {
                    let err = e.clone();
                    Box::pin(act.undo_create(e.to_string()).map(move |undo, _, _| {
                        if let Err(u) = undo {
                            tracing::error!(error = %u, "rolling back a failed creation failed");
                        }
                        Err(err)
                    }))
                }
            }),
        ))
    }
}

impl Handler<StartContainer> for ContainerActor {
    type Result = AtomicResponse<Self, Reply>;

    fn handle(&mut self, _msg: StartContainer, _ctx: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(self.start_flow())
    }
}

impl Handler<RestartNow> for ContainerActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _msg: RestartNow, _ctx: &mut Self::Context) -> Self::Result {
        if self.current().map(|c| c.status) != Ok(Status::Restarting) {
            return AtomicResponse::new(boxed(()));
        }
        AtomicResponse::new(Box::pin(self.start_flow().map(|res, act, _| {
            if let Err(e) = res {
                tracing::warn!(container = %act.id, error = %e, "restart failed");
            }
        })))
    }
}

impl Handler<ShimExited> for ContainerActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: ShimExited, _ctx: &mut Self::Context) -> Self::Result {
        let current = self.current();
        let Ok(c) = current else {
            return AtomicResponse::new(boxed(()));
        };
        if c.shim_pid != Some(msg.shim_pid) || !c.status.is_live() {
            // A stale watcher (an earlier run), or the exit is recorded already.
            return AtomicResponse::new(boxed(()));
        }
        let id = self.id.clone();
        let fut = match msg.exit {
            Some(exit) => self.record_exit(exit, None),
            None => Box::pin(
                self.settle_lost(msg.reason)
                    .map(|r, _, _| r.map(|(s, _)| s)),
            ),
        };
        AtomicResponse::new(Box::pin(fut.map(move |res, _, _| {
            if let Err(e) = res {
                tracing::error!(container = %id, error = %e, "recording the exit failed");
            }
        })))
    }
}

enum Stopped {
    /// Nothing ran (a pending restart was cancelled).
    Nothing(u64),
    /// It exited.
    Exit(ExitStatus),
    /// The shim vanished.
    Lost(String),
}

impl Handler<StopContainer> for ContainerActor {
    type Result = AtomicResponse<Self, Reply>;

    fn handle(&mut self, msg: StopContainer, _ctx: &mut Self::Context) -> Self::Result {
        let c = match self.current() {
            Ok(c) => c,
            Err(e) => return AtomicResponse::new(boxed(Err(e))),
        };
        let signal = match msg.signal {
            Some(s) => s,
            None => match c.config.stop_signal.as_deref() {
                Some(s) => match berth_engine::container::parse_signal(s) {
                    Ok(n) => n,
                    Err(e) => return AtomicResponse::new(boxed(Err(e))),
                },
                None => 15,
            },
        };
        let timeout = msg.timeout.unwrap_or(c.config.stop_timeout);
        let events = match self.decide(Command::StopContainer {
            namespace: self.namespace.clone(),
            id: self.id.clone(),
            signal,
            timeout_secs: timeout,
            at: Utc::now(),
        }) {
            Ok(e) => e,
            Err(e) => return AtomicResponse::new(boxed(Err(e))),
        };
        let (writer, socket) = (self.writer.clone(), self.socket());
        let (was_restarting, was_paused) =
            (c.status == Status::Restarting, c.status == Status::Paused);
        AtomicResponse::new(Box::pin(
            async move {
                let seq = writer.append(events).await?.last_seq();
                if was_restarting {
                    return Ok(Stopped::Nothing(seq));
                }
                let call = |req, t| shim::call(socket.clone(), req, t);
                for (sig, all, wait) in [
                    (signal, false, Duration::from_secs(timeout)),
                    (9, true, Duration::from_secs(30)),
                ] {
                    match call(Request::Kill { signal: sig, all }, Some(CONTROL_TIMEOUT)).await {
                        Ok(_) => {}
                        Err(CallError::Gone(m)) => return Ok(Stopped::Lost(m)),
                        Err(CallError::Failed(m)) => {
                            tracing::warn!(m, "sending the stop signal failed")
                        }
                    }
                    if was_paused {
                        // Frozen processes act on signals only once thawed.
                        let _ = call(Request::Resume, Some(CONTROL_TIMEOUT)).await;
                    }
                    match call(Request::Wait, Some(wait)).await {
                        Ok(Response::Exited(e)) => return Ok(Stopped::Exit(e)),
                        Err(CallError::Gone(m)) => return Ok(Stopped::Lost(m)),
                        _ => {}
                    }
                }
                Ok(Stopped::Lost(
                    "the container did not exit after SIGKILL".into(),
                ))
            }
            .into_actor(self)
            .then(|res: Result<Stopped, EngineError>, act, _ctx| {
                let fut: ResponseActFuture<Self, Result<u64, EngineError>> = match res {
                    Ok(Stopped::Nothing(seq)) => boxed(Ok(seq)),
                    Ok(Stopped::Exit(e)) => act.record_exit(e, None),
                    Ok(Stopped::Lost(m)) => {
                        Box::pin(act.settle_lost(Some(m)).map(|r, _, _| r.map(|(s, _)| s)))
                    }
                    Err(e) => boxed(Err(e)),
                };
                fut.map(|res, act, _| act.reply(res?))
            }),
        ))
    }
}

impl Handler<KillContainer> for ContainerActor {
    type Result = AtomicResponse<Self, Reply>;

    fn handle(&mut self, msg: KillContainer, _ctx: &mut Self::Context) -> Self::Result {
        let intent = self.decide(Command::KillContainer {
            namespace: self.namespace.clone(),
            id: self.id.clone(),
            signal: msg.signal,
            at: Utc::now(),
        });
        let outcome = Event::ContainerSignaled(ContainerSignal {
            namespace: self.namespace.clone(),
            id: self.id.clone(),
            signal: msg.signal,
            at: Utc::now(),
        });
        let req = Request::Kill {
            signal: msg.signal,
            all: false,
        };
        AtomicResponse::new(self.control(intent, req, "kill", outcome))
    }
}

impl Handler<PauseContainer> for ContainerActor {
    type Result = AtomicResponse<Self, Reply>;

    fn handle(&mut self, _msg: PauseContainer, _ctx: &mut Self::Context) -> Self::Result {
        let intent = self.decide(Command::PauseContainer {
            namespace: self.namespace.clone(),
            id: self.id.clone(),
            at: Utc::now(),
        });
        let outcome = Event::ContainerPaused(self.reference());
        AtomicResponse::new(self.control(intent, Request::Pause, "pause", outcome))
    }
}

impl Handler<ResumeContainer> for ContainerActor {
    type Result = AtomicResponse<Self, Reply>;

    fn handle(&mut self, _msg: ResumeContainer, _ctx: &mut Self::Context) -> Self::Result {
        let intent = self.decide(Command::ResumeContainer {
            namespace: self.namespace.clone(),
            id: self.id.clone(),
            at: Utc::now(),
        });
        let outcome = Event::ContainerResumed(self.reference());
        AtomicResponse::new(self.control(intent, Request::Resume, "resume", outcome))
    }
}

impl Handler<DeleteContainer> for ContainerActor {
    type Result = AtomicResponse<Self, Result<u64, EngineError>>;

    fn handle(&mut self, msg: DeleteContainer, _ctx: &mut Self::Context) -> Self::Result {
        let events = match self.decide(Command::DeleteContainer {
            namespace: self.namespace.clone(),
            id: self.id.clone(),
            force: msg.force,
            at: Utc::now(),
        }) {
            Ok(e) => e,
            Err(e) => return AtomicResponse::new(boxed(Err(e))),
        };
        let writer = self.writer.clone();
        AtomicResponse::new(Box::pin(
            async move { writer.append(events).await }
                .into_actor(self)
                .then(|res, act, _| match res {
                    Ok(_) => act.delete_effects(),
                    Err(e) => boxed(Err(e)),
                }),
        ))
    }
}

impl Handler<WaitContainer> for ContainerActor {
    type Result = ResponseFuture<Result<Option<ExitStatus>, EngineError>>;

    fn handle(&mut self, _msg: WaitContainer, _ctx: &mut Self::Context) -> Self::Result {
        let c = match self.current() {
            Ok(c) => c,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let running = c.status.is_live()
            || c.status == Status::Restarting
            || c.pending.as_deref() == Some("start");
        if !running {
            return Box::pin(async move { Ok(c.exit) });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiters.push(tx);
        Box::pin(async move {
            rx.await
                .map_err(|_| EngineError::Unavailable("the container actor stopped".into()))
        })
    }
}

impl Handler<ExecInContainer> for ContainerActor {
    type Result = ResponseFuture<Result<ExecOutput, EngineError>>;

    fn handle(&mut self, msg: ExecInContainer, _ctx: &mut Self::Context) -> Self::Result {
        let c = match self.current() {
            Ok(c) => c,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        if !c.status.can_exec() {
            return Box::pin(async move {
                Err(EngineError::FailedPrecondition(format!(
                    "cannot exec in container {}: it is {}",
                    c.name,
                    c.status.as_str()
                )))
            });
        }
        if msg.0.args.is_empty() {
            return Box::pin(async {
                Err(EngineError::InvalidArgument("exec needs a command".into()))
            });
        }
        let socket = self.socket();
        Box::pin(async move {
            match shim::call(socket, Request::Exec(msg.0), None).await {
                Ok(Response::Exec(out)) => Ok(out),
                Ok(Response::Error { code, message }) => Err(answer_error(&code, &message)),
                Ok(other) => Err(EngineError::Internal(format!(
                    "unexpected shim answer {other:?}"
                ))),
                Err(e) => Err(e.into_engine()),
            }
        })
    }
}
