//! The shim's reaper: one thread reaps every child with `waitpid(-1)` (the shim is a
//! child subreaper, so the container's init, re-parented to it, is reaped here too) and
//! files each exit in a table by pid. Whoever waits for a pid takes its exit from the
//! table, also when it arrived before anyone asked. As a [`Waiter`], it is how the
//! runtime driver waits for `runc` inside the shim.

use std::collections::VecDeque;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};

use crate::runtime::Waiter;

/// Exits nobody has claimed yet that are kept (oldest dropped first): orphans
/// re-parented to the shim are reaped but nobody waits for them.
const KEPT_EXITS: usize = 64;

/// Stack of the reaper thread.
const STACK: usize = 32 * 1024;

#[derive(Debug, Default)]
struct Table {
    /// Reaped exits not claimed yet, oldest first.
    exits: VecDeque<(u32, ExitStatus)>,
    /// Counts spawns, so a reaper with no children wakes when there is one.
    spawned: u64,
}

/// The table of exits and the thread that fills it.
#[derive(Debug, Default)]
pub(crate) struct Reaper {
    table: Mutex<Table>,
    changed: Condvar,
}

impl Reaper {
    /// Starts the reaper thread.
    pub(crate) fn start() -> io::Result<Arc<Reaper>> {
        let reaper = Arc::new(Reaper::default());
        let r = Arc::clone(&reaper);
        std::thread::Builder::new()
            .name("reaper".into())
            .stack_size(STACK)
            .spawn(move || r.run())?;
        Ok(reaper)
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        loop {
            let generation = self.lock().spawned;
            match waitpid(None, None) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    self.record(pid.as_raw(), ExitStatus::from_raw((code & 0xff) << 8));
                }
                Ok(WaitStatus::Signaled(pid, signal, core)) => {
                    let raw = signal as i32 | if core { 0x80 } else { 0 };
                    self.record(pid.as_raw(), ExitStatus::from_raw(raw));
                }
                Ok(_) | Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => {
                    // No children: sleep until something is spawned.
                    let table = self.lock();
                    let _unused = self
                        .changed
                        .wait_timeout_while(table, Duration::from_secs(1), |t| {
                            t.spawned == generation
                        })
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn record(&self, pid: i32, status: ExitStatus) {
        let Ok(pid) = u32::try_from(pid) else {
            return;
        };
        let mut table = self.lock();
        table.exits.push_back((pid, status));
        if table.exits.len() > KEPT_EXITS {
            table.exits.pop_front();
        }
        self.changed.notify_all();
    }

    /// Waits until `pid` has exited (returns at once if it already has) and takes its
    /// exit from the table.
    pub(crate) fn wait_pid(&self, pid: u32) -> ExitStatus {
        let mut table = self.lock();
        loop {
            if let Some(i) = table.exits.iter().position(|(p, _)| *p == pid) {
                if let Some((_, status)) = table.exits.remove(i) {
                    return status;
                }
            }
            table = self
                .changed
                .wait(table)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Waiter for Reaper {
    fn spawn(&self, cmd: &mut Command) -> io::Result<Child> {
        // Under the lock: a stale exit of an earlier process with the same pid is
        // dropped before the new one's can be filed.
        let mut table = self.lock();
        let child = cmd.spawn()?;
        let pid = child.id();
        table.exits.retain(|(p, _)| *p != pid);
        table.spawned += 1;
        self.changed.notify_all();
        Ok(child)
    }

    fn wait(&self, child: Child) -> io::Result<ExitStatus> {
        Ok(self.wait_pid(child.id()))
    }
}
