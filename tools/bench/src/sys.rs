//! Process and mount helpers shared by the benchmarks that drive real daemons
//! (`containers`, `pull`): Ctrl-C handling, pids, command lines, `/proc` fields and
//! mount points.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use anyhow::{bail, Context};
use nix::unistd::Pid;

/// SIGINT/SIGTERM received: the bench stops after the current step.
static SIGNALS: AtomicU32 = AtomicU32::new(0);
static WATCHING: AtomicBool = AtomicBool::new(false);

/// Handles SIGINT and SIGTERM on a thread of their own: the first sets [`SIGNALS`] (the
/// bench stops after the current step and cleans up), the second exits at once.
/// (Handlers, not a blocked mask: children would inherit the mask, and berthd would
/// then ignore the SIGTERM that stops it.)
pub fn watch_signals() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    if WATCHING.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Registered here, so that the handlers are in place before the bench goes on.
    let (mut int, mut term) = rt
        .block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            ))
        })
        .context("catching SIGINT and SIGTERM")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                loop {
                    let name = tokio::select! {
                        _ = int.recv() => "SIGINT",
                        _ = term.recv() => "SIGTERM",
                    };
                    if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
                        eprintln!(
                            "berth-bench: {name} received: stopping after the current step, \
                             then cleaning up (again to exit at once, leaving things behind)"
                        );
                    } else {
                        std::process::exit(130);
                    }
                }
            });
        })?;
    Ok(())
}

/// An error once SIGINT or SIGTERM was received.
pub fn check_interrupted() -> anyhow::Result<()> {
    if SIGNALS.load(Ordering::SeqCst) > 0 {
        bail!("interrupted");
    }
    Ok(())
}

/// A pid as nix wants it.
pub fn pid_of(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().map(Pid::from_raw)
}

/// A command line for people.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `Key:   123 kB` field of a `/proc` file, in kB (or the count, for `Threads`).
pub fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space…).
pub fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = &b[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(OsStr::from_bytes(&out))
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .filter(|m| m.starts_with(dir))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_and_mountinfo_escapes() {
        let status = "Name:\tx\nVmRSS:\t  1234 kB\nRssAnon:\t 200 kB\nThreads:\t2\n";
        assert_eq!(kb_field(status, "VmRSS"), Some(1234));
        assert_eq!(kb_field(status, "RssAnon"), Some(200));
        assert_eq!(kb_field(status, "Threads"), Some(2));
        assert_eq!(kb_field(status, "Pss"), None);
        assert_eq!(kb_field("Pss_Anon: 5 kB\nPss: 7 kB\n", "Pss"), Some(7));
        assert_eq!(unescape(r"/a\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape("/plain"), PathBuf::from("/plain"));
        assert_eq!(unescape(r"/end\"), PathBuf::from(r"/end\"));
    }
}
