//! `containers`: container start-to-exit latency against raw `runc`, and the cost of
//! many running containers (one `berth-shim` each).
//!
//! Everything runs against real release binaries: `berthd`, `berth` and `berth-shim`
//! next to this executable (`--bin-dir` to choose), `runc` from `PATH`. The bench starts
//! its own `berthd` on a temporary root, state and socket, imports the deterministic
//! busybox test image (`berth_mkimage`), and measures:
//!
//! 1. **Latency:** `berth run --rm busybox true` from the CLI's spawn to its exit,
//!    against `runc run` of an equivalent bundle: berth's own generated `config.json`
//!    (taken from a created container's bundle, its bind-mounted `hosts`, `hostname`
//!    and `resolv.conf` copied), a fresh container id and cgroups path per run, and an
//!    overlay rootfs over the same unpacked layer. The two sides take turns (berth,
//!    runc, berth, …) after 2 warm-up runs each. Then a stage breakdown: the same
//!    container driven through the API call by call (create, start, exit, wait,
//!    delete), `berth version` (the CLI's own cost), and `runc create` / `start` /
//!    `delete` on their own.
//! 2. **Density:** N detached `berth run -d busybox sleep 1000`: the total wall time,
//!    the memory of every `berth-shim` of this bench's state directory (VmRSS and Pss),
//!    berthd's VmRSS before and after; then `berth rm -f` of them all, timed, and a
//!    check that no shim process and no mount is left.
//!
//! Clean-up runs on every exit path (a guard's `Drop`): containers are removed with
//! `berth rm -f`, the runc side's containers with `runc delete --force`, berthd gets
//! SIGTERM (by pid), left-over mounts under the working directory are detached, the
//! runc side's cgroups removed. SIGINT/SIGTERM stop the bench after the current step.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use berth_http::api::types::CreateContainerRequest;
use berth_http::client::Client;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::signal::{kill, Signal};
use serde_json::{json, Value};

use crate::common::{load_average, machine, percentile, r2};
use crate::sys::{check_interrupted, describe, mounts_under, pid_of, unescape, watch_signals};

/// Options of `containers`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Timed runs of each side (`berth run --rm` and `runc run`), after 2 warm-up runs
    /// each; also the runs of the stage breakdown
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Detached `sleep 1000` containers of the density part (0: skip it)
    #[arg(long, default_value_t = 100)]
    containers: usize,
    /// Skip the stage breakdown
    #[arg(long)]
    no_stages: bool,
    /// Skip the bridge-network part (`berth run --rm` on the default network against
    /// `--network none`)
    #[arg(long)]
    no_network: bool,
    /// Directory holding berthd, berth and berth-shim [default: this executable's]
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// The runc binary, for the baseline and for berthd (`[runtimes.runc]`)
    #[arg(long, default_value = "runc")]
    runc: PathBuf,
    /// Where to create the working directory [default: the system temporary directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep berthd's `--state` and runc's `--root` on the working directory's disk
    /// instead of a tmpfs. By default both are on a tmpfs mounted for the bench, as
    /// `/run` is on a production host (this VM's `/run` is on disk).
    #[arg(long)]
    state_on_disk: bool,
}

/// Warm-up runs of each side before the timed ones.
const WARMUP: usize = 2;
/// Longest any single command may take before it is killed.
const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long berthd may take to answer after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long berthd may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long shims and mounts may take to go away after `rm -f`.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The namespace of every container.
const NS: &str = "default";
/// The image, as the CLI names it.
const IMAGE: &str = "busybox";
/// The bench daemon's default network (not the host's `berth0`, which a real berthd
/// may use); its bridge is removed at the end.
const BENCH_BRIDGE: &str = "berthbench0";
const BENCH_SUBNET: &str = "10.213.213.0/24";

/// Runs `cmd` with stdin from /dev/null and its output captured (or discarded when
/// `capture` is false); kills it (by its pid) after [`CMD_TIMEOUT`]. Returns the
/// output and the wall time from spawn to exit.
fn run_cmd(cmd: &mut Command, capture: bool) -> anyhow::Result<(Output, Duration)> {
    let out = || {
        if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    cmd.stdin(Stdio::null()).stdout(out()).stderr(out());
    let t0 = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("spawning {}", describe(cmd)))?;
    let pid = child.id();
    let (done, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(CMD_TIMEOUT) == Err(mpsc::RecvTimeoutError::Timeout) {
            if let Some(p) = pid_of(pid) {
                let _ = kill(p, Signal::SIGKILL);
            }
            return true;
        }
        false
    });
    let output = child.wait_with_output();
    let elapsed = t0.elapsed();
    let _ = done.send(());
    let killed = watchdog.join().unwrap_or(false);
    let output = output.with_context(|| format!("waiting for {}", describe(cmd)))?;
    if killed {
        bail!(
            "{} did not finish within {CMD_TIMEOUT:?} and was killed",
            describe(cmd)
        );
    }
    Ok((output, elapsed))
}

/// [`run_cmd`] that fails unless the command exits 0; returns its stdout.
fn ok(cmd: &mut Command) -> anyhow::Result<(String, Duration)> {
    let (out, d) = run_cmd(cmd, true)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), d))
}

/// [`ok`] with the output discarded (for commands whose children keep stdout open).
fn ok_quiet(cmd: &mut Command) -> anyhow::Result<Duration> {
    let (out, d) = run_cmd(cmd, false)?;
    if !out.status.success() {
        bail!("`{}` failed ({})", describe(cmd), out.status);
    }
    Ok(d)
}

/// Where the binaries are.
struct Bins {
    berthd: PathBuf,
    berth: PathBuf,
    shim: PathBuf,
    runc: PathBuf,
}

fn find_bins(dir: Option<&Path>, runc: &Path) -> anyhow::Result<Bins> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            let exe = std::env::current_exe().context("the path of this executable")?;
            let mut d = exe
                .parent()
                .context("this executable has no directory")?
                .to_path_buf();
            if d.file_name().is_some_and(|n| n == "deps") {
                d.pop();
            }
            d
        }
    };
    let bin = |name: &str| -> anyhow::Result<PathBuf> {
        let p = dir.join(name);
        if !p.is_file() {
            bail!(
                "{} does not exist: build it first (`cargo build --release --workspace --bins`) \
                 or give --bin-dir",
                p.display()
            );
        }
        Ok(p)
    };
    let runc = if runc.components().count() > 1 {
        runc.to_path_buf()
    } else {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join(runc))
            .find(|p| p.is_file())
            .with_context(|| format!("{} is not in PATH", runc.display()))?
    };
    Ok(Bins {
        berthd: bin("berthd")?,
        berth: bin("berth")?,
        shim: bin("berth-shim")?,
        runc,
    })
}

/// The `berth` CLI against this bench's daemon.
#[derive(Clone)]
struct Berth {
    bin: PathBuf,
    host: String,
}

impl Berth {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--host")
            .arg(&self.host)
            .args(args)
            .env_remove("BERTH_HOST")
            .env_remove("BERTH_TOKEN_FILE")
            .env_remove("BERTH_NAMESPACE");
        c
    }
}

/// A `berthd` this bench started (in its own process group, so that a Ctrl-C in the
/// terminal reaches the bench, which then cleans up through it).
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn start(
        bins: &Bins,
        berth: &Berth,
        root: &Path,
        state: &Path,
        socket: &Path,
        dir: &Path,
    ) -> anyhow::Result<Daemon> {
        let config = dir.join("berthd.toml");
        let runc = bins.runc.to_str().context("runc's path is not UTF-8")?;
        std::fs::write(
            &config,
            format!(
                "[runtimes.runc]\npath = {}\n\n[network]\ndefault_bridge = \"{BENCH_BRIDGE}\"\ndefault_subnet = \"{BENCH_SUBNET}\"\n",
                serde_json::to_string(runc)?
            ),
        )?;
        let log = dir.join("berthd.log");
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(&bins.berthd)
            .arg("--root")
            .arg(root)
            .arg("--state")
            .arg(state)
            .arg("--socket")
            .arg(socket)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawning {}", bins.berthd.display()))?;
        let mut d = Daemon {
            child: Some(child),
            log,
        };
        let t0 = Instant::now();
        loop {
            check_interrupted()?;
            if let Some(status) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                d.child = None;
                bail!(
                    "berthd exited during start-up ({status}); its log:\n{}",
                    d.log_text()
                );
            }
            if socket.exists()
                && run_cmd(&mut berth.cmd(&["version"]), true)?
                    .0
                    .status
                    .success()
            {
                return Ok(d);
            }
            if t0.elapsed() > READY_TIMEOUT {
                bail!(
                    "berthd did not answer within {READY_TIMEOUT:?}; its log:\n{}",
                    d.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL after [`EXIT_TIMEOUT`]; the exit status and how long it took.
    fn stop(&mut self) -> Option<(ExitStatus, Duration)> {
        let mut child = self.child.take()?;
        let t0 = Instant::now();
        if let Some(p) = pid_of(child.id()) {
            let _ = kill(p, Signal::SIGTERM);
        }
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some((status, t0.elapsed())),
                Ok(None) if t0.elapsed() < EXIT_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    eprintln!("berth-bench: berthd did not exit on SIGTERM; killing it");
                    let _ = child.kill();
                    return child.wait().ok().map(|s| (s, t0.elapsed()));
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Everything this bench created, undone by [`Work::cleanup`] (also on drop).
struct Work {
    dir: PathBuf,
    state: PathBuf,
    berth: Berth,
    runc: PathBuf,
    runc_root: PathBuf,
    /// The runc side's cgroups live under `/<cgroup_parent>/<id>`.
    cgroup_parent: String,
    daemon: Option<Daemon>,
    /// berth containers created and not yet removed.
    containers: Vec<String>,
    /// The runc bundle's rootfs, while mounted.
    runc_rootfs: Option<PathBuf>,
    /// The tmpfs holding the state directories, while mounted.
    tmpfs: Option<PathBuf>,
    cleaned: bool,
}

impl Work {
    /// Undoes everything; returns what could not be undone.
    fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.cleaned {
            return problems;
        }
        self.cleaned = true;
        if !self.containers.is_empty() && self.daemon.is_some() {
            for chunk in self.containers.chunks(50) {
                let mut args = vec!["rm", "-f"];
                args.extend(chunk.iter().map(String::as_str));
                if let Err(e) = ok(&mut self.berth.cmd(&args)) {
                    problems.push(format!("removing containers: {e:#}"));
                }
            }
            self.containers.clear();
        }
        for id in runc_list(&self.runc, &self.runc_root) {
            if let Err(e) = runc_delete_force(&self.runc, &self.runc_root, &id) {
                problems.push(format!("runc side: {e:#}"));
            }
        }
        if let Some(rootfs) = self.runc_rootfs.take() {
            if let Err(e) = umount2(&rootfs, MntFlags::MNT_DETACH) {
                problems.push(format!("unmounting {}: {e}", rootfs.display()));
            }
        }
        if let Some(mut d) = self.daemon.take() {
            match d.stop() {
                Some((status, _)) if !status.success() => {
                    problems.push(format!("berthd exited with {status}"));
                }
                _ => {}
            }
        }
        // Containers berthd left running (it leaves them by design when it stops): their
        // runc state is under <state>/runc; then any shim of this state directory.
        let berth_runc_root = self.state.join("runc");
        for id in runc_list(&self.runc, &berth_runc_root) {
            problems.push(format!(
                "container {id} was still known to runc; deleting it"
            ));
            let _ = runc_delete_force(&self.runc, &berth_runc_root, &id);
        }
        for pid in shims_of(&self.state) {
            problems.push(format!("berth-shim {pid} was still running; killing it"));
            if let Some(p) = pid_of(pid) {
                let _ = kill(p, Signal::SIGKILL);
            }
        }
        if let Some(t) = self.tmpfs.take() {
            if let Err(e) = umount2(&t, MntFlags::MNT_DETACH) {
                problems.push(format!("unmounting the tmpfs {}: {e}", t.display()));
            }
        }
        let mut left = mounts_under(&self.dir);
        left.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in &left {
            problems.push(format!("{} was still mounted; detaching it", m.display()));
            let _ = umount2(m, MntFlags::MNT_DETACH);
        }
        remove_cgroups(&self.cgroup_parent);
        if let Err(e) = berth_engine::network::host::remove_bridge(BENCH_BRIDGE) {
            problems.push(format!("removing the bridge {BENCH_BRIDGE}: {e}"));
        }
        if mounts_under(&self.dir).is_empty() {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                problems.push(format!("removing {}: {e}", self.dir.display()));
            }
        } else {
            problems.push(format!(
                "kept {}: something is still mounted under it",
                self.dir.display()
            ));
        }
        problems
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        for p in self.cleanup() {
            eprintln!("berth-bench: clean-up: {p}");
        }
    }
}

fn runc_list(runc: &Path, root: &Path) -> Vec<String> {
    if !root.is_dir() {
        return Vec::new();
    }
    let mut cmd = Command::new(runc);
    cmd.arg("--root").arg(root).args(["list", "-q"]);
    match ok(&mut cmd) {
        Ok((out, _)) => out
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn runc_delete_force(runc: &Path, root: &Path, id: &str) -> anyhow::Result<()> {
    ok(Command::new(runc)
        .arg("--root")
        .arg(root)
        .args(["delete", "--force", id]))?;
    Ok(())
}

/// Removes `/<parent>` (and what runc left in it) from every cgroup hierarchy.
fn remove_cgroups(parent: &str) {
    for m in mountinfo() {
        if m.fstype != "cgroup" && m.fstype != "cgroup2" {
            continue;
        }
        let dir = m.mountpoint.join(parent);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

/// One line of `/proc/self/mountinfo`.
struct MountLine {
    mountpoint: PathBuf,
    fstype: String,
    super_options: String,
}

fn mountinfo() -> Vec<MountLine> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mountpoint = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?.to_string();
            let _source = r.next()?;
            let super_options = r.next().unwrap_or("").to_string();
            Some(MountLine {
                mountpoint: unescape(mountpoint),
                fstype,
                super_options,
            })
        })
        .collect()
}

/// Pids of the `berth-shim` processes whose command line names something in `state`.
fn shims_of(state: &Path) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let state = state.as_os_str().as_bytes();
    let mut pids: Vec<u32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let mut args = cmdline.split(|&b| b == 0);
            let is_shim = args.next().is_some_and(|a0| {
                Path::new(OsStr::from_bytes(a0)).file_name() == Some(OsStr::new("berth-shim"))
            });
            is_shim && args.any(|a| a.starts_with(state))
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// A `Key:   123 kB` field of a `/proc` file, in kB; 0 when absent.
fn kb_field(text: &str, key: &str) -> u64 {
    crate::sys::kb_field(text, key).unwrap_or(0)
}

/// The memory of one process, kB (Threads is a count).
#[derive(Debug, Default, Clone, Copy)]
struct Mem {
    rss: u64,
    rss_anon: u64,
    rss_file: u64,
    pss: u64,
    pss_anon: u64,
    pss_file: u64,
    private: u64,
    threads: u64,
}

fn mem_of(pid: u32) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Some(Mem {
        rss: kb_field(&status, "VmRSS"),
        rss_anon: kb_field(&status, "RssAnon"),
        rss_file: kb_field(&status, "RssFile"),
        pss: kb_field(&rollup, "Pss"),
        pss_anon: kb_field(&rollup, "Pss_Anon"),
        pss_file: kb_field(&rollup, "Pss_File"),
        private: kb_field(&rollup, "Private_Clean") + kb_field(&rollup, "Private_Dirty"),
        threads: kb_field(&status, "Threads"),
    })
}

/// Rss and Pss (kB) of one process's mappings, grouped by what they map, largest first.
fn mappings_of(pid: u32) -> Vec<(String, u64, u64)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return Vec::new();
    };
    let mut groups: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut current = String::new();
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping header: "start-end perms offset dev inode [path]".
            let fields: Vec<&str> = line.split_whitespace().collect();
            let perms = fields.get(1).copied().unwrap_or("");
            current = match fields.get(5) {
                Some(p) => format!("{p} ({perms})"),
                None => format!("[anon] ({perms})"),
            };
        } else if let Some(v) = line.strip_prefix("Rss:") {
            groups.entry(current.clone()).or_default().0 += v
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Pss:") {
            groups.entry(current.clone()).or_default().1 += v
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    let mut v: Vec<(String, u64, u64)> = groups.into_iter().map(|(k, (r, p))| (k, r, p)).collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v
}

/// The lowerdir of the overlay mounted at `mountpoint`.
fn overlay_lowerdir(mountpoint: &Path) -> anyhow::Result<String> {
    let m = mountinfo()
        .into_iter()
        .rfind(|m| m.mountpoint == mountpoint)
        .with_context(|| format!("{} is not mounted", mountpoint.display()))?;
    if m.fstype != "overlay" {
        bail!(
            "{} is a {} mount, not overlay (berthd's snapshotter is not overlayfs?)",
            mountpoint.display(),
            m.fstype
        );
    }
    m.super_options
        .split(',')
        .find_map(|o| o.strip_prefix("lowerdir="))
        .map(str::to_string)
        .with_context(|| format!("no lowerdir in the mount of {}", mountpoint.display()))
}

/// Timings in microseconds, with their summary.
#[derive(Debug, Default, Clone)]
struct Series(Vec<u64>);

impl Series {
    fn push(&mut self, d: Duration) {
        self.0
            .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }
    fn sorted(&self) -> Vec<u64> {
        let mut v = self.0.clone();
        v.sort_unstable();
        v
    }
    fn ms(us: u64) -> f64 {
        // Exact for any duration this bench measures (< 2^52 µs).
        #[allow(clippy::cast_precision_loss)]
        let v = us as f64 / 1000.0;
        v
    }
    fn median(&self) -> f64 {
        Self::ms(percentile(&self.sorted(), 50.0))
    }
    fn p90(&self) -> f64 {
        Self::ms(percentile(&self.sorted(), 90.0))
    }
    fn min(&self) -> f64 {
        Self::ms(self.0.iter().copied().min().unwrap_or(0))
    }
    fn max(&self) -> f64 {
        Self::ms(self.0.iter().copied().max().unwrap_or(0))
    }
    fn row(&self, label: &str) -> String {
        format!(
            "  {label:<44} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            self.median(),
            self.p90(),
            self.min(),
            self.max()
        )
    }
    fn json(&self) -> Value {
        json!({
            "median": r2(self.median()),
            "p90": r2(self.p90()),
            "min": r2(self.min()),
            "max": r2(self.max()),
            "runs": self.0.iter().map(|&us| r2(Self::ms(us))).collect::<Vec<_>>(),
        })
    }
}

const HEADER: &str =
    "                                                  median       p90       min       max   (ms)";

/// The runc side's bundle: berth's config.json, an overlay rootfs of the same layer.
struct RuncBundle {
    dir: PathBuf,
    config: Value,
}

impl RuncBundle {
    /// Writes config.json with a fresh cgroups path for container `id`.
    fn prepare(&mut self, cgroup_parent: &str, id: &str) -> anyhow::Result<()> {
        self.config["linux"]["cgroupsPath"] = json!(format!("/{cgroup_parent}/{id}"));
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config)?,
        )?;
        Ok(())
    }
}

/// Builds the runc bundle from a container berth creates (and then removes).
fn runc_bundle(work: &mut Work) -> anyhow::Result<RuncBundle> {
    let (out, _) = ok(&mut work.berth.cmd(&[
        "create",
        "--name",
        "bench-template",
        "--network",
        "none",
        IMAGE,
        "true",
    ]))?;
    let id = out.trim().to_string();
    work.containers.push(id.clone());
    let bundle = work.state.join("containers").join(&id);
    let config_path = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(
        &std::fs::read(&config_path)
            .with_context(|| format!("reading {}", config_path.display()))?,
    )
    .with_context(|| format!("parsing {}", config_path.display()))?;
    let lowerdir = overlay_lowerdir(&bundle.join("rootfs"))?;

    let dir = work.dir.join("runc-bundle");
    let layer = work.dir.join("runc-layer");
    for d in [dir.join("rootfs"), layer.join("upper"), layer.join("work")] {
        std::fs::create_dir_all(&d)?;
    }
    // Bind mounts of files in berth's bundle (hosts, hostname, resolv.conf): copies.
    if let Some(mounts) = config["mounts"].as_array_mut() {
        for m in mounts {
            let Some(src) = m["source"].as_str().map(PathBuf::from) else {
                continue;
            };
            if src.starts_with(&bundle) {
                let name = src.file_name().context("a bundle file without a name")?;
                let copy = dir.join(name);
                std::fs::copy(&src, &copy).with_context(|| format!("copying {}", src.display()))?;
                m["source"] = json!(copy.to_string_lossy());
            }
        }
    }
    config["process"]["args"] = json!(["true"]);
    config["root"]["path"] = json!("rootfs");
    // berth's `none` joins the namespace it made; runc makes a fresh one instead.
    if let Some(namespaces) = config["linux"]["namespaces"].as_array_mut() {
        for n in namespaces {
            if n["type"] == "network" {
                if let Some(o) = n.as_object_mut() {
                    o.remove("path");
                }
            }
        }
    }
    let data = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        layer.join("upper").display(),
        layer.join("work").display()
    );
    let rootfs = dir.join("rootfs");
    mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .with_context(|| format!("mounting the overlay {data} on {}", rootfs.display()))?;
    work.runc_rootfs = Some(rootfs);
    ok(&mut work.berth.cmd(&["rm", &id]))?;
    work.containers.retain(|c| c != &id);
    Ok(RuncBundle { dir, config })
}

/// The stage breakdown of one container through the API.
#[derive(Default)]
struct ApiStages {
    create: Series,
    start: Series,
    exit: Series,
    wait: Series,
    delete: Series,
    total: Series,
}

/// runc's own create / start / delete.
#[derive(Default)]
struct RuncStages {
    create: Series,
    start: Series,
    exit: Series,
    delete: Series,
    total: Series,
}

fn api_once(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    work: &mut Work,
    s: &mut ApiStages,
    record: bool,
) -> anyhow::Result<()> {
    let req = CreateContainerRequest {
        image: IMAGE.into(),
        cmd: Some(vec!["true".into()]),
        network: Some("none".into()),
        ..Default::default()
    };
    let t0 = Instant::now();
    let created = rt.block_on(client.create_container(NS, &req))?;
    let t1 = Instant::now();
    let id = created.container.id;
    work.containers.push(id.clone());
    rt.block_on(client.container_verb(NS, &id, "start", ""))?;
    let t2 = Instant::now();
    rt.block_on(async {
        let mut lines = client
            .container_logs(NS, &id, "follow=true&format=json&tail=all")
            .await?;
        while let Some(l) = lines.next_line().await {
            l?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let t3 = Instant::now();
    let w = rt.block_on(client.wait_container(NS, &id))?;
    let t4 = Instant::now();
    rt.block_on(client.delete_container(NS, &id, true))?;
    let t5 = Instant::now();
    work.containers.retain(|c| c != &id);
    if w.exit_code != Some(0) {
        bail!("container {id} ended with {w:?}, not exit code 0");
    }
    if record {
        s.create.push(t1 - t0);
        s.start.push(t2 - t1);
        s.exit.push(t3 - t2);
        s.wait.push(t4 - t3);
        s.delete.push(t5 - t4);
        s.total.push(t5 - t0);
    }
    Ok(())
}

/// Whether `pid` has ended (gone, or a zombie not reaped yet).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => match s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
        {
            Some(state) => state == "Z" || state == "X",
            None => true,
        },
    }
}

fn runc_staged_once(
    work: &Work,
    bundle: &mut RuncBundle,
    id: &str,
    s: &mut RuncStages,
    record: bool,
) -> anyhow::Result<()> {
    bundle.prepare(&work.cgroup_parent, id)?;
    let pid_file = work.dir.join("runc-staged.pid");
    let _ = std::fs::remove_file(&pid_file);
    let runc = |args: &[&str]| {
        let mut c = Command::new(&work.runc);
        c.arg("--root").arg(&work.runc_root).args(args);
        c
    };
    // The container's init keeps runc create's stdout and stderr: discard them.
    let create = ok_quiet(
        runc(&["create", "--bundle"])
            .arg(&bundle.dir)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id),
    )?;
    let pid: u32 = std::fs::read_to_string(&pid_file)?.trim().parse()?;
    let (_, start) = ok(&mut runc(&["start", id]))?;
    let t2 = Instant::now();
    while !ended(pid) {
        if t2.elapsed() > CMD_TIMEOUT {
            bail!("runc container {id} (pid {pid}) did not exit");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let exit = t2.elapsed();
    let (_, delete) = ok(&mut runc(&["delete", id]))?;
    if record {
        s.create.push(create);
        s.start.push(start);
        s.exit.push(exit);
        s.delete.push(delete);
        s.total.push(create + start + exit + delete);
    }
    Ok(())
}

/// Runs the benchmark.
#[allow(clippy::too_many_lines)]
pub fn run(args: Args) -> anyhow::Result<()> {
    watch_signals()?;
    let load_start = load_average();
    println!("{}", machine());
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("the containers bench runs containers: run it as root");
    }
    let bins = find_bins(args.bin_dir.as_deref(), &args.runc)?;
    let runc_version = Command::new(&bins.runc)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    if !bins.berth.parent().is_some_and(|d| d.ends_with("release")) {
        println!("note: {} is not a release build", bins.berth.display());
    }
    println!(
        "binaries: {}, {}, {} ({:.1} MB on disk); runc {} ({runc_version})",
        bins.berthd.display(),
        bins.berth.display(),
        bins.shim.display(),
        file_mb(&bins.shim),
        bins.runc.display()
    );

    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("berth-bench-containers-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?
        .keep();
    let root = dir.join("root");
    // Volatile state (bundles, shim sockets, runc's state) on a tmpfs, as /run is.
    let volatile = dir.join("run");
    std::fs::create_dir_all(&volatile)?;
    let tmpfs = if args.state_on_disk {
        None
    } else {
        mount(
            Some("tmpfs"),
            &volatile,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755,size=512m"),
        )
        .with_context(|| format!("mounting a tmpfs on {}", volatile.display()))?;
        Some(volatile.clone())
    };
    let state = volatile.join("state");
    let socket = state.join("berth.sock");
    let berth = Berth {
        bin: bins.berth.clone(),
        host: format!("unix://{}", socket.display()),
    };
    let mut work = Work {
        dir: dir.clone(),
        state: state.clone(),
        berth: berth.clone(),
        runc: bins.runc.clone(),
        runc_root: volatile.join("runc-root"),
        cgroup_parent: format!("berth-bench-{}", std::process::id()),
        daemon: None,
        containers: Vec::new(),
        runc_rootfs: None,
        tmpfs,
        cleaned: false,
    };
    println!("working directory {}", dir.display());
    println!(
        "volatile state (berthd --state, runc --root): {}",
        if work.tmpfs.is_some() {
            "on a tmpfs, as /run on a production host"
        } else {
            "on disk (--state-on-disk)"
        }
    );

    // The image and the daemon.
    let image = dir.join("busybox.tar");
    berth_mkimage::build(
        berth_mkimage::ImageKind::Busybox,
        &image,
        berth_mkimage::Format::OciArchive,
        "busybox:latest",
    )
    .context("building the busybox test image")?;
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&state)?;
    work.daemon = Some(Daemon::start(&bins, &berth, &root, &state, &socket, &dir)?);
    let daemon_pid = work
        .daemon
        .as_ref()
        .and_then(Daemon::pid)
        .context("berthd's pid")?;
    let image_str = image.to_string_lossy().into_owned();
    ok(&mut berth.cmd(&["image", "import", &image_str]))?;
    let berthd_rss_start = mem_of(daemon_pid).map_or(0, |m| m.rss);
    let mut bundle = runc_bundle(&mut work)?;

    // 1. Latency, interleaved.
    // `--network none`: a network namespace with only `lo`, as `runc run` gives (the
    // bridge network's cost is measured on its own below).
    let berth_args = ["run", "--rm", "--network", "none", IMAGE, "true"];
    let berth_cmdline = describe(&berth.cmd(&berth_args));
    let (runc_root, bundle_dir) = (work.runc_root.clone(), bundle.dir.clone());
    let runc_cmd = |id: &str| {
        let mut c = Command::new(&bins.runc);
        c.arg("--root")
            .arg(&runc_root)
            .arg("run")
            .arg("--bundle")
            .arg(&bundle_dir)
            .arg(id);
        c
    };
    let runc_cmdline = describe(&runc_cmd("<id>"));
    println!();
    println!(
        "1. start to exit of `true`: {WARMUP} warm-up runs each, then {} runs each, taking turns (berth, runc, …)",
        args.runs
    );
    println!("   berth: {berth_cmdline}");
    println!("   runc:  {runc_cmdline}");
    println!(
        "          (bundle: berth's config.json with args [\"true\"] and cgroupsPath /{}/<id>; rootfs overlay over the busybox layer berthd unpacked)",
        work.cgroup_parent
    );
    let mut berth_runs = Series::default();
    let mut runc_runs = Series::default();
    for i in 0..WARMUP + args.runs {
        check_interrupted()?;
        let (_, b) = ok(&mut berth.cmd(&berth_args))?;
        let id = format!("bench-{}-{i}", std::process::id());
        bundle.prepare(&work.cgroup_parent, &id)?;
        let (_, r) = ok(&mut runc_cmd(&id))?;
        if work.runc_root.join(&id).exists() {
            runc_delete_force(&bins.runc, &work.runc_root, &id)?;
        }
        if i >= WARMUP {
            berth_runs.push(b);
            runc_runs.push(r);
        }
    }
    let (leftover, _) = ok(&mut berth.cmd(&["ps", "-a", "-q"]))?;
    if !leftover.trim().is_empty() {
        bail!(
            "`berth run --rm` left containers behind: {}",
            leftover.trim()
        );
    }
    let ratio = berth_runs.median() / runc_runs.median();
    println!("{HEADER}");
    println!(
        "{}",
        berth_runs.row("berth run --rm --network none busybox true")
    );
    println!("{}", runc_runs.row("runc run (same bundle)"));
    println!(
        "  ratio berth / runc: {:.2}x (medians), {:.2}x (p90) -> target <= 1.5x: {}",
        ratio,
        berth_runs.p90() / runc_runs.p90(),
        if ratio <= 1.5 { "MET" } else { "MISSED" }
    );

    // 1b. What the default bridge network adds to a run (CNI ADD at start, DEL at exit).
    let mut network_json = Value::Null;
    if !args.no_network {
        check_interrupted()?;
        let bridge_args = ["run", "--rm", IMAGE, "true"];
        println!();
        println!(
            "1b. bridge networking: {WARMUP} warm-up runs each, then {} runs each, taking turns",
            args.runs
        );
        println!("   none:   {berth_cmdline}");
        println!("   bridge: {}", describe(&berth.cmd(&bridge_args)));
        println!("           (default network {BENCH_BRIDGE} on {BENCH_SUBNET}: CNI bridge + host-local, lo by the loopback plugin)");
        let mut none_runs = Series::default();
        let mut bridge_runs = Series::default();
        for i in 0..WARMUP + args.runs {
            check_interrupted()?;
            let (_, n) = ok(&mut berth.cmd(&berth_args))?;
            let (_, b) = ok(&mut berth.cmd(&bridge_args))?;
            if i >= WARMUP {
                none_runs.push(n);
                bridge_runs.push(b);
            }
        }
        let added = bridge_runs.median() - none_runs.median();
        println!("{HEADER}");
        println!("{}", none_runs.row("berth run --rm --network none"));
        println!("{}", bridge_runs.row("berth run --rm (bridge, berth0)"));
        println!(
            "  bridge adds {added:.1} ms to a run (medians; {:.2}x the none run)",
            bridge_runs.median() / none_runs.median()
        );
        network_json = json!({
            "none_ms": none_runs.json(),
            "bridge_ms": bridge_runs.json(),
            "added_ms_median": added,
        });
    }

    // Stage breakdown.
    let mut stages_json = Value::Null;
    if !args.no_stages {
        check_interrupted()?;
        println!();
        println!(
            "   stage breakdown ({} runs each after {WARMUP} warm-up, taking turns):",
            args.runs
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = Client::unix(&socket);
        let mut api = ApiStages::default();
        let mut rs = RuncStages::default();
        let mut version = Series::default();
        for i in 0..WARMUP + args.runs {
            check_interrupted()?;
            let record = i >= WARMUP;
            api_once(&rt, &client, &mut work, &mut api, record)?;
            let id = format!("bench-{}-s{i}", std::process::id());
            runc_staged_once(&work, &mut bundle, &id, &mut rs, record)?;
            let (_, v) = ok(&mut berth.cmd(&["version"]))?;
            if record {
                version.push(v);
            }
        }
        println!("{HEADER}");
        println!("{}", version.row("berth version (CLI process + 1 request)"));
        println!("   through the API (in-process client, one container each):");
        println!("{}", api.create.row("POST /containers (create)"));
        println!("{}", api.start.row("POST …/start"));
        println!("{}", api.exit.row("… until the log stream ends (exit)"));
        println!("{}", api.wait.row("POST …/wait"));
        println!("{}", api.delete.row("DELETE …?force=true"));
        println!("{}", api.total.row("total"));
        println!("   runc on its own:");
        println!("{}", rs.create.row("runc create"));
        println!("{}", rs.start.row("runc start"));
        println!("{}", rs.exit.row("… until init has exited (polled)"));
        println!("{}", rs.delete.row("runc delete"));
        println!("{}", rs.total.row("total (without reading the pid file)"));
        stages_json = json!({
            "berth_version_ms": version.json(),
            "api": {
                "create_ms": api.create.json(),
                "start_ms": api.start.json(),
                "exit_ms": api.exit.json(),
                "wait_ms": api.wait.json(),
                "delete_ms": api.delete.json(),
                "total_ms": api.total.json(),
            },
            "runc": {
                "create_ms": rs.create.json(),
                "start_ms": rs.start.json(),
                "exit_ms": rs.exit.json(),
                "delete_ms": rs.delete.json(),
                "total_ms": rs.total.json(),
            },
        });
    }
    if let Some(rootfs) = work.runc_rootfs.take() {
        umount2(&rootfs, MntFlags::MNT_DETACH)
            .with_context(|| format!("unmounting {}", rootfs.display()))?;
    }

    // 2. Density.
    let mut density_json = Value::Null;
    if args.containers > 0 {
        check_interrupted()?;
        let n = args.containers;
        let run_args = ["run", "-d", "--network", "none", IMAGE, "sleep", "1000"];
        let rss_before = mem_of(daemon_pid).map_or(0, |m| m.rss);
        println!();
        println!(
            "2. {n} detached containers, one after the other: {}",
            describe(&berth.cmd(&run_args))
        );
        let mut each = Series::default();
        let t0 = Instant::now();
        for _ in 0..n {
            check_interrupted()?;
            let (out, d) = ok(&mut berth.cmd(&run_args))?;
            work.containers.push(out.trim().to_string());
            each.push(d);
        }
        let start_total = t0.elapsed();
        let shims = shims_of(&state);
        let mems: Vec<Mem> = shims.iter().filter_map(|&p| mem_of(p)).collect();
        let rss_after = mem_of(daemon_pid).map_or(0, |m| m.rss);
        let count = u64::try_from(mems.len()).unwrap_or(0);
        if mems.len() != n {
            println!(
                "   warning: {} berth-shim processes of this state directory, not {n}",
                mems.len()
            );
        }
        let sum = |f: fn(&Mem) -> u64| mems.iter().map(f).sum::<u64>();
        let mean = |f: fn(&Mem) -> u64| {
            #[allow(clippy::cast_precision_loss)]
            let v = if count == 0 {
                0.0
            } else {
                sum(f) as f64 / count as f64
            };
            v
        };
        let minmax = |f: fn(&Mem) -> u64| {
            (
                mems.iter().map(f).min().unwrap_or(0),
                mems.iter().map(f).max().unwrap_or(0),
            )
        };
        println!(
            "   started {n} in {:.2} s ({:.1} ms each: median {:.1}, p90 {:.1}, max {:.1})",
            start_total.as_secs_f64(),
            crate::common::ms(start_total) / f64::from(u32::try_from(n).unwrap_or(u32::MAX)),
            each.median(),
            each.p90(),
            each.max()
        );
        let (rss_min, rss_max) = minmax(|m| m.rss);
        let (pss_min, pss_max) = minmax(|m| m.pss);
        println!(
            "   memory per berth-shim ({count} processes), kB:   mean     min     max     sum"
        );
        println!(
            "     VmRSS                                     {:>7.0} {rss_min:>7} {rss_max:>7} {:>7}   -> target <= 2 MB (2048 kB): {}",
            mean(|m| m.rss),
            sum(|m| m.rss),
            if mean(|m| m.rss) <= 2048.0 { "MET" } else { "MISSED" }
        );
        println!(
            "       of which RssAnon / RssFile              {:>7.0} / {:.0}",
            mean(|m| m.rss_anon),
            mean(|m| m.rss_file)
        );
        println!(
            "     Pss (smaps_rollup; shared pages split)    {:>7.0} {pss_min:>7} {pss_max:>7} {:>7}   -> {}",
            mean(|m| m.pss),
            sum(|m| m.pss),
            if mean(|m| m.pss) <= 2048.0 { "MET" } else { "MISSED" }
        );
        println!(
            "       of which Pss_Anon / Pss_File            {:>7.0} / {:.0}",
            mean(|m| m.pss_anon),
            mean(|m| m.pss_file)
        );
        println!(
            "     private (Private_Clean + Private_Dirty)   {:>7.0}",
            mean(|m| m.private)
        );
        println!(
            "     threads                                   {:>7.1}",
            mean(|m| m.threads)
        );
        let top = shims.first().map(|&p| mappings_of(p)).unwrap_or_default();
        if let Some(&pid) = shims.first() {
            println!("   largest mappings of one shim (pid {pid}), Rss / Pss kB:");
            for (name, rss, pss) in top.iter().take(8) {
                println!("     {rss:>6} {pss:>6}  {name}");
            }
        }
        println!(
            "   berthd VmRSS: {} kB after start-up and import, {rss_before} kB before the {n} containers, {rss_after} kB with them (+{} kB, {:.1} kB per container)",
            berthd_rss_start,
            rss_after.saturating_sub(rss_before),
            {
                #[allow(clippy::cast_precision_loss)]
                let v = rss_after.saturating_sub(rss_before) as f64 / n as f64;
                v
            }
        );

        // Remove them all.
        check_interrupted()?;
        let ids = work.containers.clone();
        let mut rm = vec!["rm", "-f"];
        rm.extend(ids.iter().map(String::as_str));
        let (_, rm_time) = ok(&mut berth.cmd(&rm))?;
        work.containers.clear();
        let t = Instant::now();
        let (left_shims, left_mounts) = loop {
            let s = shims_of(&state);
            // The bench's own tmpfs for the volatile state is not a leftover.
            let m: Vec<_> = mounts_under(&dir)
                .into_iter()
                .filter(|m| Some(m) != work.tmpfs.as_ref())
                .collect();
            if (s.is_empty() && m.is_empty()) || t.elapsed() > SETTLE_TIMEOUT {
                break (s, m);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let settle = t.elapsed();
        let (ps, _) = ok(&mut berth.cmd(&["ps", "-a", "-q"]))?;
        let left_containers: Vec<&str> = ps.split_whitespace().collect();
        let rss_rm = mem_of(daemon_pid).map_or(0, |m| m.rss);
        println!(
            "   berth rm -f <{n} ids> (one command): {:.2} s ({:.1} ms per container); berthd VmRSS afterwards {rss_rm} kB",
            rm_time.as_secs_f64(),
            crate::common::ms(rm_time) / f64::from(u32::try_from(n).unwrap_or(u32::MAX)),
        );
        println!(
            "   left behind: {} shim processes, {} mounts under the working directory, {} containers (checked for {:.0} ms)",
            left_shims.len(),
            left_mounts.len(),
            left_containers.len(),
            crate::common::ms(settle)
        );
        if !left_shims.is_empty() || !left_mounts.is_empty() || !left_containers.is_empty() {
            bail!(
                "rm -f left shims {left_shims:?}, mounts {left_mounts:?}, containers {left_containers:?}"
            );
        }
        density_json = json!({
            "containers": n,
            "start_total_s": r2(start_total.as_secs_f64()),
            "start_each_ms": each.json(),
            "shims": count,
            "shim_vmrss_kb_mean": r2(mean(|m| m.rss)),
            "shim_vmrss_kb_min": rss_min,
            "shim_vmrss_kb_max": rss_max,
            "shim_rss_anon_kb_mean": r2(mean(|m| m.rss_anon)),
            "shim_rss_file_kb_mean": r2(mean(|m| m.rss_file)),
            "shim_pss_kb_mean": r2(mean(|m| m.pss)),
            "shim_pss_anon_kb_mean": r2(mean(|m| m.pss_anon)),
            "shim_pss_file_kb_mean": r2(mean(|m| m.pss_file)),
            "shim_private_kb_mean": r2(mean(|m| m.private)),
            "shim_threads_mean": r2(mean(|m| m.threads)),
            "berthd_vmrss_kb_start": berthd_rss_start,
            "berthd_vmrss_kb_before": rss_before,
            "berthd_vmrss_kb_after": rss_after,
            "berthd_vmrss_kb_after_rm": rss_rm,
            "rm_total_s": r2(rm_time.as_secs_f64()),
            "left_shims": left_shims.len(),
            "left_mounts": left_mounts.len(),
        });
    }

    // Stop the daemon (SIGTERM) and undo the rest.
    let stopped = work.daemon.as_mut().and_then(Daemon::stop);
    if let Some((status, d)) = stopped {
        println!(
            "berthd stopped on SIGTERM in {:.0} ms ({status})",
            crate::common::ms(d)
        );
    }
    let problems = work.cleanup();
    for p in &problems {
        println!("clean-up: {p}");
    }
    println!(
        "{}",
        json!({
            "bench": "containers",
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "load_start": load_start,
            "load_end": load_average(),
            "runc": runc_version,
            "runs": args.runs,
            "berth_run_ms": berth_runs.json(),
            "runc_run_ms": runc_runs.json(),
            "ratio_median": r2(ratio),
            "stages": stages_json,
            "network": network_json,
            "density": density_json,
            "cleanup_problems": problems,
        })
    );
    if !problems.is_empty() {
        bail!("clean-up found {} problem(s)", problems.len());
    }
    Ok(())
}

fn file_mb(p: &Path) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let v = std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1e6);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_fields() {
        let status = "Name:\tberth-shim\nVmRSS:\t    1234 kB\nRssAnon:\t  200 kB\nThreads:\t2\n";
        assert_eq!(kb_field(status, "VmRSS"), 1234);
        assert_eq!(kb_field(status, "RssAnon"), 200);
        assert_eq!(kb_field(status, "Threads"), 2);
        assert_eq!(kb_field(status, "Pss"), 0);
        // "Pss" must not match "Pss_Anon".
        assert_eq!(kb_field("Pss_Anon: 5 kB\nPss: 7 kB\n", "Pss"), 7);
    }

    #[test]
    fn series_summary() {
        let mut s = Series::default();
        for ms in [5u64, 1, 4, 2, 3] {
            s.push(Duration::from_millis(ms));
        }
        assert!((s.median() - 3.0).abs() < 1e-9);
        assert!((s.min() - 1.0).abs() < 1e-9);
        assert!((s.max() - 5.0).abs() < 1e-9);
        assert!((s.p90() - 5.0).abs() < 1e-9);
    }
}
