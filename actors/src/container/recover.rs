//! Settling a container with reality after a daemon restart: interrupted intents are
//! finished or rolled back, live shims re-attached, exits that happened while the
//! daemon was down recorded with their real status.

use actix::{ActorContext, ActorFutureExt, AsyncContext, AtomicResponse, Handler, WrapFuture};
use berth_engine::event::{ContainerStarted, Event};
use berth_engine::shim::proto::{Request, Response, ShimStatus};
use berth_engine::state::Status;
use berth_engine::EngineError;
use chrono::Utc;

use super::handlers::RestartNow;
use super::shim::{self, CallError, CONTROL_TIMEOUT};
use super::ContainerActor;
use crate::messages::{ContainersReconciled, RecoverContainer};

type Fut = actix::ResponseActFuture<ContainerActor, Result<ContainersReconciled, EngineError>>;

fn settled() -> ContainersReconciled {
    ContainersReconciled {
        settled: 1,
        ..Default::default()
    }
}

impl Handler<RecoverContainer> for ContainerActor {
    type Result = AtomicResponse<Self, Result<ContainersReconciled, EngineError>>;

    fn handle(&mut self, _msg: RecoverContainer, ctx: &mut Self::Context) -> Self::Result {
        let c = match self.current() {
            Ok(c) => c,
            Err(e) => {
                ctx.stop();
                return AtomicResponse::new(Box::pin(actix::fut::ready(Err(e))));
            }
        };
        let fut: Fut = match c.status {
            Status::Creating => Box::pin(
                self.undo_create("interrupted by a daemon restart".into())
                    .map(|r, _, _| r.map(|_| settled())),
            ),
            Status::Deleting => Box::pin(self.delete_effects().map(|r, _, _| r.map(|_| settled()))),
            Status::Restarting => {
                ctx.notify(RestartNow);
                Box::pin(actix::fut::ready(Ok(settled())))
            }
            _ if c.status.is_live() || c.pending.as_deref() == Some("start") => self.probe(),
            _ => {
                // Stopped: its exit is recorded. A shim still holding it (the daemon
                // died before letting it go) is let go now.
                let socket = self.env.socket(&self.id);
                if socket.exists() {
                    actix::spawn(async move {
                        let _ = shim::call(
                            socket,
                            Request::Shutdown { force: false },
                            Some(CONTROL_TIMEOUT),
                        )
                        .await;
                    });
                }
                Box::pin(actix::fut::ready(Ok(ContainersReconciled::default())))
            }
        };
        AtomicResponse::new(Box::pin(
            fut.then(|res, act, _ctx| act.settle_network().map(move |_, _, _| res)),
        ))
    }
}

impl ContainerActor {
    /// After the status is settled: a container that does not run gives back its
    /// address, veth and namespace (it exited, or died, while the daemon was down); a
    /// running one has its attachment verified with CNI CHECK, and is wired again
    /// (DEL, then ADD in the namespace it runs in) when the check fails.
    fn settle_network(&mut self) -> actix::ResponseActFuture<Self, ()> {
        let Ok(c) = self.current() else {
            return Box::pin(actix::fut::ready(()));
        };
        let (writer, env) = (self.writer.clone(), self.env.clone());
        Box::pin(
            async move {
                if c.status.is_live() {
                    let network = c
                        .attachment
                        .as_ref()
                        .and_then(|a| writer.state().read().networks.get(&a.network).cloned());
                    if let Some(net) = network {
                        let checked = {
                            let (env, c) = (env.clone(), c.clone());
                            crate::storage::blocking(move || super::net::check(&env, &c, &net))
                                .await
                        };
                        if let Err(e) = checked {
                            tracing::warn!(container = %c.id, error = %e, "network CHECK failed: wiring it again");
                            match super::net::rewire(&writer, &env, &c).await {
                                Ok(()) => tracing::info!(container = %c.id, "network wired again"),
                                Err(e) => tracing::warn!(container = %c.id, error = %e, "wiring the network again failed"),
                            }
                        }
                    }
                } else if c.attachment.is_some()
                    || (c.config.network.owns_netns()
                        && berth_engine::network::netns::exists(&env.netns_path(&c.id)))
                {
                    if let Err(e) = super::net::down(&writer, &env, &c).await {
                        tracing::warn!(container = %c.id, error = %e, "releasing the network of a stopped container");
                    }
                }
            }
            .into_actor(self),
        )
    }

    /// Asks the shim how things are and records what changed.
    fn probe(&mut self) -> Fut {
        let c = match self.current() {
            Ok(c) => c,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        let socket = self.env.socket(&self.id);
        Box::pin(
            async move { shim::call(socket, Request::State, Some(CONTROL_TIMEOUT)).await }
                .into_actor(self)
                .then(move |res, act, ctx| -> Fut {
                    match res {
                        Ok(Response::State(s)) if s.status == ShimStatus::Stopped => {
                            let exit = s.exit.clone().or_else(|| super::fs::read_exit(&act.env, &act.id));
                            match exit {
                                Some(exit) => Box::pin(act.record_exit(exit, None).map(|r, _, _| {
                                    r.map(|_| ContainersReconciled {
                                        exited: 1,
                                        ..Default::default()
                                    })
                                })),
                                None => act.lost(Some("the shim has no exit status".into())),
                            }
                        }
                        Ok(Response::State(s)) if s.status == ShimStatus::Created => {
                            // Interrupted between `runc create` and `runc start`.
                            let writer = act.writer.clone();
                            let socket = act.env.socket(&act.id);
                            let failed = Event::ContainerStartFailed(
                                act.failed("start", "interrupted by a daemon restart".into()),
                            );
                            Box::pin(
                                async move {
                                    let _ = shim::call(
                                        socket,
                                        Request::Shutdown { force: true },
                                        Some(CONTROL_TIMEOUT),
                                    )
                                    .await;
                                    writer.append(vec![failed]).await?;
                                    Ok(settled())
                                }
                                .into_actor(act),
                            )
                        }
                        Ok(Response::State(s)) => {
                            let mut events = Vec::new();
                            if c.pending.as_deref() == Some("start") || c.shim_pid != Some(s.shim_pid) {
                                events.push(Event::ContainerStarted(ContainerStarted {
                                    namespace: act.namespace.clone(),
                                    id: act.id.clone(),
                                    pid: s.pid,
                                    shim_pid: s.shim_pid,
                                    at: Utc::now(),
                                }));
                            }
                            match (s.status, c.status) {
                                (ShimStatus::Paused, st) if st != Status::Paused => {
                                    events.push(Event::ContainerPaused(act.reference()))
                                }
                                (ShimStatus::Running, Status::Paused) => {
                                    events.push(Event::ContainerResumed(act.reference()))
                                }
                                _ => {}
                            }
                            if let Some(op @ ("stop" | "kill" | "pause" | "resume")) = c.pending.as_deref() {
                                events.push(Event::ContainerRequestFailed(
                                    act.failed(op, "interrupted by a daemon restart".into()),
                                ));
                            }
                            act.watch(ctx, s.shim_pid);
                            let writer = act.writer.clone();
                            Box::pin(
                                async move {
                                    if !events.is_empty() {
                                        writer.append(events).await?;
                                    }
                                    Ok(ContainersReconciled {
                                        reattached: 1,
                                        ..Default::default()
                                    })
                                }
                                .into_actor(act),
                            )
                        }
                        Ok(other) => act.lost(Some(format!("the shim answered state with {other:?}"))),
                        Err(CallError::Gone(m)) => act.lost(Some(m)),
                        Err(CallError::Failed(m)) => {
                            // Alive but not answering: keep watching rather than
                            // killing a container that may be fine.
                            tracing::warn!(container = %act.id, m, "shim did not answer; watching it");
                            if let Some(pid) = c.shim_pid {
                                act.watch(ctx, pid);
                            }
                            Box::pin(actix::fut::ready(Ok(ContainersReconciled::default())))
                        }
                    }
                }),
        )
    }

    fn lost(&mut self, why: Option<String>) -> Fut {
        Box::pin(self.settle_lost(why).map(|r, _, _| {
            r.map(|(_, lost)| ContainersReconciled {
                exited: u64::from(!lost),
                lost: u64::from(lost),
                ..Default::default()
            })
        }))
    }
}
