//! `pull`: cold pull (download + verify + unpack, empty store each time) of a large
//! multi-layer image from a loopback registry, berth against containerd, side by side.
//!
//! The bench builds its own test image (gzip layers of random data, copies of real
//! binaries and libraries from `/usr/lib` and `/usr/bin`, and text), pushes it with
//! `skopeo` into a Debian `docker-registry` it starts on 127.0.0.1, then takes turns:
//! `berth pull` against a fresh `berthd` (new root and state each run), and
//! `ctr images pull --plain-http` against a fresh `containerd` (new root, state and
//! socket each run, CRI plugin disabled, overlayfs snapshotter). Each daemon is started
//! and idle before the timed command; the time is the CLI's spawn to exit. A sampler
//! thread reads the daemon's VmRSS (and the CLI's VmHWM) every 10 ms during the pull.
//!
//! Clean-up runs on every path (a guard's `Drop`; SIGINT/SIGTERM stop the bench after
//! the current step): berthd, containerd and the registry get SIGTERM by pid (SIGKILL
//! after a timeout), mounts left under the working directory are detached, the working
//! directory is removed.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flate2::write::GzEncoder;
use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{load_average, machine, median, ms, r2};
use crate::sys::{check_interrupted, describe, mounts_under, pid_of, watch_signals};

/// Options of `pull`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Timed cold pulls of each side, taking turns (berth, containerd, berth, …)
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Uncompressed file content of the test image, in MB (10^6 bytes)
    #[arg(long, default_value_t = 320)]
    size_mb: u64,
    /// Layers of the test image
    #[arg(long, default_value_t = 5)]
    layers: usize,
    /// Directory holding berthd and berth [default: this executable's]
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Where to create the working directory [default: the system temporary directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Seed of the generated content
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Longest a pull (or any other command) may take before it is killed.
const CMD_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a daemon may take to answer after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// The memory sampler's period.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// The image, in the registry.
const REPO_TAG: &str = "bench/big:1";
/// containerd's namespace.
const CTR_NS: &str = "bench";

/// Waits for `child` up to `timeout`; kills it (by its pid) after that.
fn wait_timeout(child: &mut Child, timeout: Duration, what: &str) -> anyhow::Result<ExitStatus> {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(s);
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not finish within {timeout:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `cmd` to completion (output captured); fails unless it exits 0.
fn ok(cmd: &mut Command) -> anyhow::Result<String> {
    let what = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "`{what}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A daemon this bench started, in its own process group (a Ctrl-C in the terminal
/// reaches only the bench, which then stops it by pid).
struct Proc {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> anyhow::Result<Proc> {
        let f = std::fs::File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawning {}", describe(cmd)))?;
        Ok(Proc {
            name,
            child: Some(child),
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `ready()` holds; fails if the process exits or the time runs out.
    fn wait_ready(&mut self, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
        let t0 = Instant::now();
        loop {
            check_interrupted()?;
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "{} exited during start-up ({status}); its log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if ready() {
                return Ok(());
            }
            if t0.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} did not answer within {READY_TIMEOUT:?}; its log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM by pid, then SIGKILL after [`EXIT_TIMEOUT`].
    fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let t0 = Instant::now();
        if let Some(p) = pid_of(child.id()) {
            let _ = kill(p, Signal::SIGTERM);
        }
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if t0.elapsed() < EXIT_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    eprintln!(
                        "berth-bench: {} did not exit on SIGTERM; killing it",
                        self.name
                    );
                    let _ = child.kill();
                    return child.wait().ok();
                }
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The working directory and everything running in it; undone on drop.
struct Work {
    dir: PathBuf,
    procs: Vec<Proc>,
    cleaned: bool,
}

impl Work {
    fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.cleaned {
            return problems;
        }
        self.cleaned = true;
        while let Some(mut p) = self.procs.pop() {
            p.stop();
        }
        detach_mounts_under(&self.dir, &mut problems);
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

    /// Stops (and forgets) the process with this pid.
    fn stop(&mut self, pid: u32) -> Option<ExitStatus> {
        let i = self.procs.iter().position(|p| p.pid() == pid)?;
        let mut p = self.procs.remove(i);
        p.stop()
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        for p in self.cleanup() {
            eprintln!("berth-bench: clean-up: {p}");
        }
    }
}

fn detach_mounts_under(dir: &Path, problems: &mut Vec<String>) {
    for m in mounts_under(dir) {
        problems.push(format!("{} was still mounted; detaching it", m.display()));
        let _ = umount2(&m, MntFlags::MNT_DETACH);
    }
}

// ---------------------------------------------------------------------------------------
// The test image.

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Counts and hashes what goes through it.
struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    n: u64,
}

impl<W: Write> HashWriter<W> {
    fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hash: Sha256::new(),
            n: 0,
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{:x}", self.hash.clone().finalize())
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.hash.update(&buf[..k]);
        self.n += u64::try_from(k).unwrap_or(0);
        Ok(k)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One built layer.
#[derive(Debug, Clone)]
struct Layer {
    digest: String,
    size: u64,
    diff_id: String,
    tar_size: u64,
    files: u64,
    random: u64,
    system: u64,
    text: u64,
}

const WORDS: &[&str] = &[
    "the",
    "container",
    "runtime",
    "image",
    "layer",
    "snapshot",
    "overlay",
    "mount",
    "namespace",
    "journal",
    "event",
    "digest",
    "manifest",
    "config",
    "registry",
    "pull",
    "push",
    "content",
    "store",
    "ingest",
    "lease",
    "garbage",
    "collect",
    "process",
    "signal",
    "cgroup",
    "memory",
    "cpu",
    "device",
    "network",
    "volume",
    "label",
    "annotation",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "for",
    "with",
    "on",
    "that",
    "by",
    "this",
    "be",
    "it",
    "error",
    "warning",
    "info",
    "debug",
    "request",
    "response",
    "status",
    "return",
];

fn text_file(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 16);
    let mut col = 0;
    while out.len() < size {
        let w = WORDS[usize::try_from(rng.next() >> 40).unwrap_or(0) % WORDS.len()];
        out.extend_from_slice(w.as_bytes());
        col += w.len() + 1;
        if col > 72 {
            out.push(b'\n');
            col = 0;
        } else {
            out.push(b' ');
        }
    }
    out.truncate(size);
    out
}

/// Regular files of `/usr/lib` and `/usr/bin` (up to 16 MiB each), in path order.
fn system_files() -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from("/usr/bin"), PathBuf::from("/usr/lib")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(std::fs::DirEntry::path);
        for e in entries.into_iter().rev() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                if let Ok(md) = e.metadata() {
                    if md.len() > 0 && md.len() <= 16 << 20 {
                        out.push((e.path(), md.len()));
                    }
                }
            }
        }
    }
    out
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Builds layer `index` into `blobs` (as `<hex>` after a temporary name).
fn build_layer(
    blobs: &Path,
    index: usize,
    budget: u64,
    system: &[(PathBuf, u64)],
    seed: u64,
) -> anyhow::Result<Layer> {
    let tmp = blobs.join(format!("layer-{index}.tmp"));
    let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    let gz = GzEncoder::new(HashWriter::new(file), flate2::Compression::new(6));
    let mut tar = tar::Builder::new(HashWriter::new(gz));
    let mut rng = Rng(seed ^ (u64::try_from(index).unwrap_or(0) << 32));
    let (mut random, mut sys, mut text, mut files) = (0u64, 0u64, 0u64, 0u64);
    let dirs = format!("layer{index}");
    // 40% random (incompressible) binaries.
    let mut buf = vec![0u8; 4 << 20];
    while random < budget * 4 / 10 {
        let n = rng.range(64 << 10, 4 << 20);
        let len = usize::try_from(n)?;
        rng.fill(&mut buf[..len]);
        let mut h = header(n, 0o755);
        tar.append_data(
            &mut h,
            format!("opt/{dirs}/bin/blob-{files}.bin"),
            &buf[..len],
        )?;
        random += n;
        files += 1;
    }
    // 40% real files (the slice given to this layer).
    for (p, len) in system {
        let Ok(f) = std::fs::File::open(p) else {
            continue;
        };
        let mut h = header(*len, 0o755);
        let rel = p.strip_prefix("/").unwrap_or(p);
        tar.append_data(&mut h, rel, f)?;
        sys += len;
        files += 1;
    }
    // 20% text.
    while text < budget / 5 {
        let n = rng.range(64, 32 << 10);
        let data = text_file(&mut rng, usize::try_from(n)?);
        let mut h = header(n, 0o644);
        tar.append_data(
            &mut h,
            format!("usr/share/doc/{dirs}/pkg-{}/file-{files}.txt", files % 97),
            &data[..],
        )?;
        text += n;
        files += 1;
    }
    let hw = tar.into_inner()?;
    let diff_id = hw.digest();
    let tar_size = hw.n;
    let mut outer = hw.inner.finish()?;
    outer.flush()?;
    let digest = outer.digest();
    let size = outer.n;
    drop(outer);
    let hex = digest.trim_start_matches("sha256:");
    std::fs::rename(&tmp, blobs.join(hex))?;
    Ok(Layer {
        digest,
        size,
        diff_id,
        tar_size,
        files,
        random,
        system: sys,
        text,
    })
}

/// Writes a JSON blob; returns its digest and size.
fn put_blob(blobs: &Path, v: &Value) -> anyhow::Result<(String, u64)> {
    let bytes = serde_json::to_vec(v)?;
    let hex = format!("{:x}", Sha256::digest(&bytes));
    std::fs::write(blobs.join(&hex), &bytes)?;
    Ok((format!("sha256:{hex}"), u64::try_from(bytes.len())?))
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Builds the OCI layout `<dir>/oci` (tag `big`); layers in parallel.
fn build_image(dir: &Path, args: &Args) -> anyhow::Result<Vec<Layer>> {
    let oci = dir.join("oci");
    let blobs = oci.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let total = args.size_mb * 1_000_000;
    let n = args.layers.max(1);
    // Layer shares decrease: n, n-1, …, 1 parts.
    let parts: u64 = (1..=n).map(|k| u64::try_from(k).unwrap_or(1)).sum();
    let budgets: Vec<u64> = (0..n)
        .map(|i| total * u64::try_from(n - i).unwrap_or(1) / parts)
        .collect();
    // Split the system files in path order, 40% of each layer's budget.
    let all = system_files();
    let mut slices: Vec<Vec<(PathBuf, u64)>> = Vec::new();
    let mut it = all.into_iter();
    for b in &budgets {
        let want = b * 4 / 10;
        let mut got = 0;
        let mut s = Vec::new();
        for (p, len) in it.by_ref() {
            s.push((p, len));
            got += len;
            if got >= want {
                break;
            }
        }
        slices.push(s);
    }
    let seed = args.seed;
    let layers: Vec<anyhow::Result<Layer>> = std::thread::scope(|sc| {
        let handles: Vec<_> = budgets
            .iter()
            .zip(&slices)
            .enumerate()
            .map(|(i, (b, s))| {
                let blobs = &blobs;
                sc.spawn(move || build_layer(blobs, i, *b, s, seed))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("layer builder panicked")))
            })
            .collect()
    });
    let layers: Vec<Layer> = layers.into_iter().collect::<anyhow::Result<_>>()?;
    let config = json!({
        "architecture": host_arch(),
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
    });
    let (cdigest, csize) = put_blob(&blobs, &config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
        "layers": layers.iter().map(|l| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": l.digest, "size": l.size,
        })).collect::<Vec<_>>(),
    });
    let (mdigest, msize) = put_blob(&blobs, &manifest)?;
    std::fs::write(
        oci.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": mdigest, "size": msize,
                "annotations": {"org.opencontainers.image.ref.name": "big"},
            }],
        }))?,
    )?;
    std::fs::write(oci.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(layers)
}

// ---------------------------------------------------------------------------------------
// Memory sampling.

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    crate::sys::kb_field(&text, key)
}

/// Samples the daemon's VmRSS (peak) and the CLI's VmHWM (last seen) until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    cli: Arc<AtomicU32>,
    handle: std::thread::JoinHandle<(u64, u64, u64)>,
}

impl Sampler {
    fn start(daemon: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let cli = Arc::new(AtomicU32::new(0));
        let (s, c) = (stop.clone(), cli.clone());
        let handle = std::thread::spawn(move || {
            let (mut peak, mut cli_hwm, mut samples) = (0u64, 0u64, 0u64);
            loop {
                if let Some(v) = status_kb(daemon, "VmRSS") {
                    peak = peak.max(v);
                }
                let cp = c.load(Ordering::SeqCst);
                if cp != 0 {
                    if let Some(v) = status_kb(cp, "VmHWM") {
                        cli_hwm = cli_hwm.max(v);
                    }
                }
                samples += 1;
                if s.load(Ordering::SeqCst) {
                    return (peak, cli_hwm, samples);
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        });
        Sampler { stop, cli, handle }
    }

    fn finish(self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap_or((0, 0, 0))
    }
}

/// One timed pull.
#[derive(Debug, Clone, Default)]
struct Run {
    ms: f64,
    rss_start_kb: u64,
    rss_peak_kb: u64,
    hwm_end_kb: u64,
    cli_hwm_kb: u64,
    samples: u64,
    /// berth only: (ms after pull.started, layer size) of each `pull.layer_fetched`,
    /// then pull.completed's ms.
    layers_ms: Vec<(f64, u64)>,
    completed_ms: Option<f64>,
}

/// Runs the timed command with the sampler on `daemon`.
fn timed(cmd: &mut Command, daemon: u32) -> anyhow::Result<Run> {
    check_interrupted()?;
    let rss_start_kb = status_kb(daemon, "VmRSS").unwrap_or(0);
    let sampler = Sampler::start(daemon);
    let what = describe(cmd);
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {what}"))?;
    sampler.cli.store(child.id(), Ordering::SeqCst);
    let mut stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = std::io::Read::read_to_string(e, &mut s);
        }
        s
    });
    let status = wait_timeout(&mut child, CMD_TIMEOUT, &what);
    let elapsed = t0.elapsed();
    let (rss_peak_kb, cli_hwm_kb, samples) = sampler.finish();
    let err = err_reader.join().unwrap_or_default();
    let status = status?;
    if !status.success() {
        bail!("`{what}` failed ({status}): {}", err.trim());
    }
    Ok(Run {
        ms: ms(elapsed),
        rss_start_kb,
        rss_peak_kb,
        hwm_end_kb: status_kb(daemon, "VmHWM").unwrap_or(0),
        cli_hwm_kb,
        samples,
        ..Run::default()
    })
}

// ---------------------------------------------------------------------------------------
// The two sides.

fn bin_dir(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(d) = dir {
        return Ok(d.to_path_buf());
    }
    let exe = std::env::current_exe().context("the path of this executable")?;
    let mut d = exe
        .parent()
        .context("this executable has no directory")?
        .to_path_buf();
    if d.file_name().is_some_and(|n| n == "deps") {
        d.pop();
    }
    Ok(d)
}

fn berth_cmd(berth: &Path, sock: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(berth);
    c.arg("--host")
        .arg(format!("unix://{}", sock.display()))
        .args(args)
        .env_remove("BERTH_HOST")
        .env_remove("BERTH_TOKEN_FILE")
        .env_remove("BERTH_NAMESPACE");
    c
}

/// Per layer (ms after pull.started, size), and pull.completed's ms.
type Milestones = (Vec<(f64, u64)>, Option<f64>);

/// The pull's milestones from berthd's journal: per layer (ms after pull.started,
/// size), and pull.completed's ms.
fn berth_milestones(sock: &Path) -> anyhow::Result<Milestones> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = berth_http::client::Client::unix(sock);
    let page = rt
        .block_on(client.journal_page(0, 10_000))
        .map_err(|e| anyhow::anyhow!("GET /v1/journal: {e}"))?;
    let mut started = None;
    let mut layers = Vec::new();
    let mut completed = None;
    for r in &page.records {
        let since = |at: chrono::DateTime<chrono::Utc>| {
            started
                .map(|s: chrono::DateTime<chrono::Utc>| ms((at - s).to_std().unwrap_or_default()))
        };
        match r.topic.as_str() {
            "pull.started" => started = Some(r.at),
            "pull.layer_fetched" => {
                if let Some(t) = since(r.at) {
                    layers.push((t, r.event.get("size").and_then(Value::as_u64).unwrap_or(0)));
                }
            }
            "pull.completed" => completed = since(r.at),
            "pull.failed" => bail!("the journal has pull.failed: {}", r.event),
            _ => {}
        }
    }
    Ok((layers, completed))
}

fn berth_once(
    work: &mut Work,
    berthd: &Path,
    berth: &Path,
    i: usize,
    reference: &str,
) -> anyhow::Result<Run> {
    let d = work.dir.join(format!("berth-{i}"));
    let (root, state) = (d.join("root"), d.join("state"));
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&state)?;
    let sock = d.join("berth.sock");
    let mut p = Proc::spawn(
        "berthd",
        Command::new(berthd)
            .arg("--root")
            .arg(&root)
            .arg("--state")
            .arg(&state)
            .arg("--socket")
            .arg(&sock),
        d.join("berthd.log"),
    )?;
    let pid = p.pid();
    let ready = p.wait_ready(|| {
        sock.exists()
            && berth_cmd(berth, &sock, &["version"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    });
    work.procs.push(p);
    ready?;
    std::thread::sleep(Duration::from_millis(200));
    let mut run = timed(&mut berth_cmd(berth, &sock, &["pull", reference]), pid)?;
    let (layers, completed) = berth_milestones(&sock)?;
    run.layers_ms = layers;
    run.completed_ms = completed;
    if let Some(s) = work.stop(pid) {
        if !s.success() {
            eprintln!("berth-bench: berthd exited with {s}");
        }
    }
    Ok(run)
}

fn containerd_once(work: &mut Work, i: usize, reference: &str) -> anyhow::Result<(Run, usize)> {
    let d = work.dir.join(format!("ctrd-{i}"));
    std::fs::create_dir_all(&d)?;
    let (root, state, sock) = (d.join("root"), d.join("state"), d.join("ctrd.sock"));
    let config = d.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "version = 2\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt}\n",
            opt = serde_json::to_string(&d.join("opt").to_string_lossy())?
        ),
    )?;
    let mut p = Proc::spawn(
        "containerd",
        Command::new("containerd")
            .arg("--root")
            .arg(&root)
            .arg("--state")
            .arg(&state)
            .arg("--address")
            .arg(&sock)
            .arg("--config")
            .arg(&config),
        d.join("containerd.log"),
    )?;
    let pid = p.pid();
    let ready = p.wait_ready(|| {
        sock.exists()
            && Command::new("ctr")
                .arg("-a")
                .arg(&sock)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    });
    work.procs.push(p);
    ready?;
    std::thread::sleep(Duration::from_millis(200));
    let mut cmd = ctr_pull(&sock, reference);
    let run = timed(&mut cmd, pid)?;
    // Unpacked? One committed snapshot per layer.
    let snaps =
        ok(Command::new("ctr")
            .arg("-a")
            .arg(&sock)
            .args(["-n", CTR_NS, "snapshots", "ls"]))?;
    let committed = snaps.lines().filter(|l| l.contains("Committed")).count();
    if let Some(s) = work.stop(pid) {
        if !s.success() {
            eprintln!("berth-bench: containerd exited with {s}");
        }
    }
    let mut problems = Vec::new();
    detach_mounts_under(&d, &mut problems);
    for p in problems {
        eprintln!("berth-bench: {p}");
    }
    Ok((run, committed))
}

fn ctr_pull(sock: &Path, reference: &str) -> Command {
    let mut c = Command::new("ctr");
    c.arg("-a")
        .arg(sock)
        .args(["-n", CTR_NS, "images", "pull", "--plain-http", reference]);
    c
}

#[allow(clippy::cast_precision_loss)]
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

#[allow(clippy::cast_precision_loss)]
fn kb_mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

struct Summary {
    median: f64,
    min: f64,
    max: f64,
}

fn summary(v: &[f64]) -> Summary {
    Summary {
        median: median(v),
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(0.0, f64::max),
    }
}

/// Dir usage in bytes (regular files), for the report.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                total += md.len();
            }
        }
    }
    total
}

/// Runs the benchmark.
pub fn run(args: Args) -> anyhow::Result<()> {
    watch_signals()?;
    if !nix::unistd::geteuid().is_root() {
        bail!("the pull bench runs as root (containerd and berthd mount overlays)");
    }
    let bins = bin_dir(args.bin_dir.as_deref())?;
    let (berthd, berth) = (bins.join("berthd"), bins.join("berth"));
    for b in [&berthd, &berth] {
        if !b.is_file() {
            bail!(
                "{} does not exist: build it first (`cargo build --release -p berthd -p berth-cli \
                 -p berth-shim -p berth-bench`) or give --bin-dir",
                b.display()
            );
        }
    }
    for (tool, pkg) in [
        ("/usr/bin/docker-registry", "docker-registry"),
        ("/usr/bin/skopeo", "skopeo"),
        ("/usr/bin/containerd", "containerd"),
        ("/usr/bin/ctr", "containerd"),
    ] {
        if !Path::new(tool).is_file() {
            bail!("{tool} is missing (apt-get install {pkg})");
        }
    }
    println!("{}", machine());
    let ctrd_version = ok(Command::new("containerd").arg("--version"))?
        .trim()
        .to_string();
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("berth-bench-pull-")
        .tempdir_in(&base)?
        .keep();
    let mut work = Work {
        dir: dir.clone(),
        procs: Vec::new(),
        cleaned: false,
    };
    println!(
        "binaries: {} and {}; {ctrd_version}",
        berthd.display(),
        berth.display()
    );
    println!("working directory {}", dir.display());

    // 1. The image.
    let t0 = Instant::now();
    let layers = build_image(&dir, &args)?;
    let (csize, usize_) = layers
        .iter()
        .fold((0, 0), |(c, u), l| (c + l.size, u + l.tar_size));
    println!(
        "\n1. test image: {} gzip layers (level 6), {:.1} MB compressed, {:.1} MB of tar, built in {:.1} s",
        layers.len(),
        mb(csize),
        mb(usize_),
        t0.elapsed().as_secs_f64()
    );
    println!("   layer   files  random MB  system MB  text MB   tar MB   gzip MB  ratio");
    for (i, l) in layers.iter().enumerate() {
        println!(
            "   {i:>5} {:>7} {:>10.1} {:>10.1} {:>8.1} {:>8.1} {:>9.1} {:>6.2}",
            l.files,
            mb(l.random),
            mb(l.system),
            mb(l.text),
            mb(l.tar_size),
            mb(l.size),
            mb(l.tar_size) / mb(l.size).max(1e-9)
        );
    }
    if csize < 150_000_000 {
        println!("   warning: under 150 MB compressed (raise --size-mb)");
    }
    check_interrupted()?;

    // 2. The registry, and the push.
    let port = free_port()?;
    let reg_dir = dir.join("registry");
    std::fs::create_dir_all(&reg_dir)?;
    let reg_config = reg_dir.join("config.yml");
    std::fs::write(
        &reg_config,
        format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             health:\n  storagedriver:\n    enabled: false\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: berth-bench-secret\n",
            reg_dir.join("data").display()
        ),
    )?;
    let mut reg = Proc::spawn(
        "docker-registry",
        Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&reg_config),
        reg_dir.join("registry.log"),
    )?;
    let ready = reg.wait_ready(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    work.procs.push(reg);
    ready?;
    let host = format!("127.0.0.1:{port}");
    let reference = format!("{host}/{REPO_TAG}");
    let t0 = Instant::now();
    ok(Command::new("/usr/bin/skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:big", dir.join("oci").display()))
        .arg(format!("docker://{reference}")))?;
    println!(
        "\n2. docker-registry on {host} (storage under the working directory); \
         skopeo copy took {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // The OCI layout is no longer needed: free its room.
    let _ = std::fs::remove_dir_all(dir.join("oci"));

    // 3. The runs.
    let berth_line = describe(&berth_cmd(
        &berth,
        Path::new("<tmp>/berth-N/berth.sock"),
        &["pull", &reference],
    ));
    let ctr_line = describe(&ctr_pull(Path::new("<tmp>/ctrd-N/ctrd.sock"), &reference));
    println!(
        "\n3. cold pull (download + verify + unpack into an empty store), {} runs each, taking turns; \
         each daemon fresh (new root/state) and idle before the timed command",
        args.runs
    );
    println!("   berth: {berth_line}");
    println!("          (berthd --root <tmp>/berth-N/root --state <tmp>/berth-N/state --socket …; default config: overlayfs snapshotter)");
    println!("   containerd: {ctr_line}");
    println!("          (containerd --root/--state/--address under <tmp>/ctrd-N, config version 2, CRI disabled, overlayfs)");
    let mut b_runs = Vec::new();
    let mut c_runs = Vec::new();
    for i in 0..args.runs {
        let b = berth_once(&mut work, &berthd, &berth, i, &reference)?;
        println!(
            "   run {i}: berth      {:>9.1} ms  berthd VmRSS {:>7} kB -> peak {:>7} kB, berth CLI VmHWM {:>6} kB ({} samples); store {:.1} MB",
            b.ms, b.rss_start_kb, b.rss_peak_kb, b.cli_hwm_kb, b.samples,
            mb(du(&work.dir.join(format!("berth-{i}/root"))))
        );
        b_runs.push(b);
        let (c, committed) = containerd_once(&mut work, i, &reference)?;
        println!(
            "   run {i}: containerd {:>9.1} ms  containerd VmRSS {:>7} kB -> peak {:>7} kB, ctr VmHWM {:>6} kB ({} samples); {committed} committed snapshots; store {:.1} MB",
            c.ms, c.rss_start_kb, c.rss_peak_kb, c.cli_hwm_kb, c.samples,
            mb(du(&work.dir.join(format!("ctrd-{i}/root"))))
        );
        if committed < layers.len() {
            println!("   warning: containerd committed {committed} snapshots for {} layers: not unpacked?", layers.len());
        }
        c_runs.push(c);
    }

    // 4. Results.
    let bt: Vec<f64> = b_runs.iter().map(|r| r.ms).collect();
    let ct: Vec<f64> = c_runs.iter().map(|r| r.ms).collect();
    let (bs, cs) = (summary(&bt), summary(&ct));
    let ratio = bs.median / cs.median.max(1e-9);
    let peak = |v: &[Run], f: fn(&Run) -> u64| v.iter().map(f).max().unwrap_or(0);
    println!(
        "\n4. results ({:.1} MB compressed, {} layers)",
        mb(csize),
        layers.len()
    );
    println!("                       median       min       max (ms)   MB/s (median, compressed)   daemon VmRSS start -> peak (max of runs)   CLI peak");
    for (name, s, runs) in [
        ("berth pull", &bs, &b_runs),
        ("ctr images pull", &cs, &c_runs),
    ] {
        println!(
            "   {name:<16} {:>9.1} {:>9.1} {:>9.1}   {:>10.1}                  {:>6.1} -> {:>6.1} MB                        {:>6.1} MB",
            s.median,
            s.min,
            s.max,
            mb(csize) / (s.median / 1000.0).max(1e-9),
            kb_mb(peak(runs, |r| r.rss_start_kb)),
            kb_mb(peak(runs, |r| r.rss_peak_kb)),
            kb_mb(peak(runs, |r| r.cli_hwm_kb)),
        );
    }
    println!(
        "   ratio berth / containerd: {ratio:.2}x (medians) -> target <= 0.7x: {}",
        if ratio <= 0.7 { "MET" } else { "MISSED" }
    );
    println!("\n   berth's journal, per run (ms after pull.started): pull.layer_fetched (size MB) …, pull.completed");
    for (i, r) in b_runs.iter().enumerate() {
        let l: Vec<String> = r
            .layers_ms
            .iter()
            .map(|(t, s)| format!("{t:.0} ({:.1})", mb(*s)))
            .collect();
        println!(
            "   run {i}: {}; completed {}",
            l.join(", "),
            r.completed_ms.map_or("?".into(), |c| format!("{c:.0}"))
        );
    }
    println!(
        "\n   notes: both pull from the same loopback registry, whose blobs are in the page cache \
         after the push; each side writes to the working directory's disk with its own fsync \
         behaviour; load average now {:.2}",
        load_average()
    );

    let runs_json = |v: &[Run]| -> Vec<Value> {
        v.iter()
            .map(|r| {
                json!({
                    "ms": r2(r.ms), "rss_start_kb": r.rss_start_kb, "rss_peak_kb": r.rss_peak_kb,
                    "hwm_kb": r.hwm_end_kb, "cli_hwm_kb": r.cli_hwm_kb,
                    "layers_fetched_ms": r.layers_ms.iter().map(|(t, _)| r2(*t)).collect::<Vec<_>>(),
                    "completed_ms": r.completed_ms.map(r2),
                })
            })
            .collect()
    };
    let problems = work.cleanup();
    for p in &problems {
        eprintln!("berth-bench: clean-up: {p}");
    }
    println!(
        "{}",
        json!({
            "bench": "pull",
            "compressed_mb": r2(mb(csize)), "tar_mb": r2(mb(usize_)), "layers": layers.len(),
            "runs": args.runs,
            "berth_ms": {"median": r2(bs.median), "min": r2(bs.min), "max": r2(bs.max)},
            "containerd_ms": {"median": r2(cs.median), "min": r2(cs.min), "max": r2(cs.max)},
            "ratio": r2(ratio), "target_met": ratio <= 0.7,
            "berthd_rss_peak_kb": peak(&b_runs, |r| r.rss_peak_kb),
            "containerd_rss_peak_kb": peak(&c_runs, |r| r.rss_peak_kb),
            "berth_cli_hwm_kb": peak(&b_runs, |r| r.cli_hwm_kb),
            "ctr_hwm_kb": peak(&c_runs, |r| r.cli_hwm_kb),
            "berth_runs": runs_json(&b_runs), "containerd_runs": runs_json(&c_runs),
            "containerd": ctrd_version, "cleanup_problems": problems,
        })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_fills_and_ranges() {
        let mut r = Rng(1);
        let mut b = [0u8; 13];
        r.fill(&mut b);
        assert!(b.iter().any(|&x| x != 0));
        for _ in 0..100 {
            let v = r.range(10, 20);
            assert!((10..20).contains(&v));
        }
    }
}
