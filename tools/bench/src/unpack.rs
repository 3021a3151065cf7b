//! `unpack`: layer unpack throughput, berth's `apply_layer` against GNU tar, side by
//! side in one run.
//!
//! The bench first builds a multi-layer image once, in a temporary directory, from a
//! fixed seed: small text files (generated words, compressible), medium binaries
//! (pseudo-random, incompressible), directories, relative and absolute symlinks, a few
//! hardlinks, files every layer overwrites, and, in the upper layers, whiteouts and an
//! opaque directory. Unless `--no-system-files`, a deterministic sample of the real
//! files and symlinks under `/usr/lib` and `/usr/share` fills part of each layer
//! (realistic binaries, scripts and data). Every layer is written as `.tar`, `.tar.gz`
//! (flate2, level 6) and `.tar.zst` (zstd, level 3); its diff_id is computed on the way.
//!
//! Then, each run, for gzip, zstd and the plain tar (extraction alone), into fresh
//! directories on the same filesystem:
//! - berth: `apply_layer` of every layer in order into one directory
//!   (`WhiteoutMode::Native`, with the expected diff_id), as the native snapshotter
//!   applies the stack, then `sync_root`;
//! - tar: `tar -xzf` / `tar --zstd -xf` / `tar -xf` of every layer in order into one
//!   directory, then `sync -f`;
//! - berth in parallel (gzip and zstd): every layer into its own directory
//!   (`WhiteoutMode::Overlay`, as overlay snapshots are), all layers on their own
//!   threads at once, then one `sync_root`; and tar the same way (one process per layer,
//!   all at once, then `sync -f`), for comparison.
//!
//! Times are wall clock (`Instant`), with and without the final sync; each case ends
//! with one, so no case pays for the previous one's writeback. Creating directories is
//! not timed. Every tree is kept until the end of the bench (when the filesystem has
//! room): on ext4 without a journal, the inode allocator skips inodes freed in the
//! last minute, one by one, so deleting a 26k-file tree between cases made the next
//! case several times slower. The variants take turns going first from one run to
//! the next. A profile then times the parts alone: in-process
//! decompression, sha256 of the tar bytes, and `gzip -dc` / `zstd -dc`.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use berth_engine::ids::Digest;
use berth_engine::unpack::{apply_layer, sync_root, ApplyOptions, Compression, WhiteoutMode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::common::{median, ms, r2, thousands};

/// Options of `unpack`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Size of the image's file content over all layers, in MB (10^6 bytes); the tar
    /// streams are a little larger (headers, padding)
    #[arg(long, default_value_t = 220)]
    size_mb: u64,
    /// Layers in the image (sizes 40/30/20/10% for 4: layer i weighs layers - i)
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// Measured runs per case (the median is reported)
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Keep the working directory (the layers and the unpacked trees), and print its path
    #[arg(long)]
    keep: bool,
    /// Drop the page cache (`sync; echo 3 > /proc/sys/vm/drop_caches`, root only) before
    /// every timed case, so the layers are read from disk
    #[arg(long)]
    drop_caches: bool,
    /// Only generated content: copy no files from /usr/lib and /usr/share
    #[arg(long)]
    no_system_files: bool,
    /// Seed of the generated content
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to create the working directory [default: the system temporary directory];
    /// the layers and the unpacked trees share its filesystem
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Skip the profile (decompression alone, sha256 alone, gzip -dc and zstd -dc)
    #[arg(long)]
    no_profile: bool,
}

/// The mtime of every generated entry (fixed, so the layers are reproducible).
const MTIME: u64 = 1_700_000_000;
/// Share of each layer's bytes in small text files, in percent.
const TEXT_PCT: u64 = 35;
/// Share in pseudo-random binaries, in percent.
const BIN_PCT: u64 = 20;
// The rest (45%): system files, or generated binary-like data where there are none.
/// System files larger than this are left out (one file would dominate a layer).
const MAX_SYSTEM_FILE: u64 = 16 << 20;
/// Files the filesystem probe creates.
const PROBE_FILES: usize = 2000;
/// A probe slower than this (µs per create) means the figures are skewed.
const PROBE_SLOW_US: f64 = 40.0;
/// Buffer of the profile's reads.
const READ_BUF: usize = 256 * 1024;

// ---------------------------------------------------------------------------------
// Content

/// SplitMix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x6a09_e667_f3bc_c908)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `usize` in `0..n`.
    fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    /// Log-uniform in `[lo, hi)` (powers of two): a power-of-two bucket, then uniform
    /// inside it. Many small values, a few large ones, as file sizes are.
    fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = (lo.max(1).ilog2(), hi.max(2).ilog2());
        let e = a + u32::try_from(self.below(u64::from(b - a).max(1))).unwrap_or(0);
        let base = 1u64 << e;
        (base + self.below(base)).clamp(lo, hi - 1)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Generated text: lines of words from a fixed vocabulary, common words far more
/// frequent than rare ones (compresses about as well as documentation and source).
struct Words(Vec<Vec<u8>>);

impl Words {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x776f_7264);
        Words(
            (0..1024)
                .map(|_| {
                    let len = 2 + rng.index(9);
                    (0..len)
                        .map(|_| b'a' + u8::try_from(rng.below(26)).unwrap_or(0))
                        .collect()
                })
                .collect(),
        )
    }

    fn text(&self, rng: &mut Rng, size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(size + 128);
        while out.len() < size {
            let n = 4 + rng.below(11);
            for k in 0..n {
                if k > 0 {
                    out.push(b' ');
                }
                // Roughly Zipf-like: the product of two uniforms favours small indexes.
                let i = (rng.index(1024) * rng.index(1024)) >> 10;
                out.extend_from_slice(&self.0[i]);
            }
            out.extend_from_slice(match rng.below(8) {
                0 => b".\n",
                1 => b";\n",
                2 => b" {\n",
                _ => b"\n",
            });
        }
        out.truncate(size);
        out
    }
}

fn random_bytes(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    rng.fill(&mut v);
    v
}

/// Machine-code-like bytes: 16-byte pieces, random, zero, or copied from earlier in the
/// file (compresses about 2×, like shared libraries).
fn binary_like(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    let mut at = 0;
    while at < size {
        let end = (at + 16).min(size);
        match rng.below(10) {
            0..=3 => rng.fill(&mut v[at..end]),
            4 | 5 => {}
            _ if at >= 4096 => {
                let from = at - 16 * (1 + rng.index(255));
                v.copy_within(from..from + (end - at), at);
            }
            _ => rng.fill(&mut v[at..end]),
        }
        at = end;
    }
    v
}

/// A file or symlink under `/usr` that goes into a layer.
#[derive(Clone)]
struct SystemEntry {
    path: PathBuf,
    size: u64,
    mode: u32,
    link: Option<PathBuf>,
}

/// Every regular file (1 B to 16 MiB) and symlink under `roots`, in path order.
fn scan_system(roots: &[&str]) -> Vec<SystemEntry> {
    fn walk(dir: &Path, out: &mut Vec<SystemEntry>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let Ok(md) = fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = md.file_type();
            if ft.is_dir() {
                walk(&p, out);
            } else if ft.is_file() && (1..=MAX_SYSTEM_FILE).contains(&md.len()) {
                out.push(SystemEntry {
                    path: p,
                    size: md.len(),
                    mode: md.permissions().mode() & 0o7777,
                    link: None,
                });
            } else if ft.is_symlink() {
                if let Ok(target) = fs::read_link(&p) {
                    out.push(SystemEntry {
                        path: p,
                        size: 0,
                        mode: 0o777,
                        link: Some(target),
                    });
                }
            }
        }
    }
    let mut out = Vec::new();
    for r in roots {
        walk(Path::new(r), &mut out);
    }
    out
}

/// An even sample of `all` (every k-th entry) worth about `budget` bytes, split into
/// consecutive runs, one per layer, of about `budgets[i]` bytes each.
fn sample_system(all: &[SystemEntry], budgets: &[u64]) -> Vec<Vec<SystemEntry>> {
    let want: u64 = budgets.iter().sum();
    let total: u64 = all.iter().map(|e| e.size).sum();
    let stride = usize::try_from((total / want.max(1)).max(1)).unwrap_or(1);
    let mut out: Vec<Vec<SystemEntry>> = vec![Vec::new(); budgets.len()];
    let (mut layer, mut got) = (0, 0u64);
    for e in all.iter().step_by(stride) {
        while layer < budgets.len() && got >= budgets[layer] {
            layer += 1;
            got = 0;
        }
        if layer == budgets.len() {
            break;
        }
        got += e.size;
        out[layer].push(e.clone());
    }
    out
}

// ---------------------------------------------------------------------------------
// Building the layers

/// The tar stream, written at once to the plain file, the gzip and zstd encoders and
/// the diff_id hash.
struct Sinks {
    hash: Sha256,
    bytes: u64,
    plain: BufWriter<File>,
    gz: flate2::write::GzEncoder<BufWriter<File>>,
    zst: zstd::stream::write::Encoder<'static, BufWriter<File>>,
}

impl Write for Sinks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hash.update(buf);
        self.plain.write_all(buf)?;
        self.gz.write_all(buf)?;
        self.zst.write_all(buf)?;
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What one layer holds, and where its files are.
#[derive(Debug, Default, Clone)]
struct Layer {
    index: usize,
    diff_id: Option<Digest>,
    plain: PathBuf,
    gz: PathBuf,
    zst: PathBuf,
    /// File content (what the size budget counts).
    content_bytes: u64,
    tar_bytes: u64,
    gz_bytes: u64,
    zst_bytes: u64,
    files: u64,
    dirs: u64,
    symlinks: u64,
    hardlinks: u64,
    whiteouts: u64,
    system_files: u64,
    system_bytes: u64,
}

impl Layer {
    fn entries(&self) -> u64 {
        self.files + self.dirs + self.symlinks + self.hardlinks + self.whiteouts
    }

    fn path(&self, f: Format) -> &Path {
        match f {
            Format::Gzip => &self.gz,
            Format::Zstd => &self.zst,
            Format::Plain => &self.plain,
        }
    }

    fn compressed_bytes(&self, f: Format) -> u64 {
        match f {
            Format::Gzip => self.gz_bytes,
            Format::Zstd => self.zst_bytes,
            Format::Plain => self.tar_bytes,
        }
    }
}

/// Writes tar entries, declaring every parent directory once, before its contents.
struct LayerWriter {
    tar: tar::Builder<Sinks>,
    dirs: HashSet<PathBuf>,
    info: Layer,
}

impl LayerWriter {
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h
    }

    fn parents(&mut self, path: &Path) -> io::Result<()> {
        let mut missing: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty() && !self.dirs.contains(*a))
            .collect();
        missing.reverse();
        for d in missing {
            let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
            self.tar.append_data(&mut h, d, io::empty())?;
            self.dirs.insert(d.to_path_buf());
            self.info.dirs += 1;
        }
        Ok(())
    }

    fn dir(&mut self, path: &Path) -> io::Result<()> {
        self.parents(path)?;
        if self.dirs.insert(path.to_path_buf()) {
            let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
            self.tar.append_data(&mut h, path, io::empty())?;
            self.info.dirs += 1;
        }
        Ok(())
    }

    fn file(&mut self, path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
        self.parents(path)?;
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.tar.append_data(&mut h, path, data)?;
        self.info.files += 1;
        self.info.content_bytes += data.len() as u64;
        Ok(())
    }

    fn symlink(&mut self, path: &Path, target: &Path) -> io::Result<()> {
        self.parents(path)?;
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.tar.append_link(&mut h, path, target)?;
        self.info.symlinks += 1;
        Ok(())
    }

    fn hardlink(&mut self, path: &Path, target: &Path) -> io::Result<()> {
        self.parents(path)?;
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.tar.append_link(&mut h, path, target)?;
        self.info.hardlinks += 1;
        Ok(())
    }

    /// A whiteout entry `marker` (`.wh.<name>`, or the opaque marker `.wh..wh..opq`) in
    /// `dir`, declaring `dir` first. GNU tar extracts it as an empty file.
    fn whiteout(&mut self, dir: &Path, marker: &str) -> io::Result<()> {
        self.dir(dir)?;
        let mut h = Self::header(tar::EntryType::Regular, 0o644, 0);
        self.tar
            .append_data(&mut h, dir.join(marker), io::empty())?;
        self.info.whiteouts += 1;
        Ok(())
    }
}

/// Builds layer `index` into `dir`: `layer-<i>.tar`, `.tar.gz`, `.tar.zst`.
fn build_layer(
    dir: &Path,
    index: usize,
    budget: u64,
    system: &[SystemEntry],
    words: &Words,
    seed: u64,
) -> anyhow::Result<Layer> {
    let base = dir.join(format!("layer-{index}"));
    let plain = base.with_extension("tar");
    let gz = base.with_extension("tar.gz");
    let zst = base.with_extension("tar.zst");
    let create = |p: &Path| -> anyhow::Result<BufWriter<File>> {
        Ok(BufWriter::with_capacity(
            1 << 20,
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        ))
    };
    let sinks = Sinks {
        hash: Sha256::new(),
        bytes: 0,
        plain: create(&plain)?,
        gz: flate2::write::GzEncoder::new(create(&gz)?, flate2::Compression::default()),
        zst: zstd::stream::write::Encoder::new(create(&zst)?, 3)?,
    };
    let mut w = LayerWriter {
        tar: tar::Builder::new(sinks),
        dirs: HashSet::new(),
        info: Layer {
            index,
            plain: plain.clone(),
            gz: gz.clone(),
            zst: zst.clone(),
            ..Layer::default()
        },
    };
    let mut rng = Rng::new(seed.wrapping_mul(1000).wrapping_add(index as u64));
    let text_budget = budget * TEXT_PCT / 100;
    let bin_budget = budget * BIN_PCT / 100;
    let rest_budget = budget - text_budget - bin_budget;

    // 1. The sampled system files, as they are under /usr.
    let mut rest_used = 0u64;
    for e in system {
        let rel = e.path.strip_prefix("/").unwrap_or(&e.path);
        match &e.link {
            Some(target) => w.symlink(rel, target)?,
            None => {
                let Ok(data) = fs::read(&e.path) else {
                    continue;
                };
                w.file(rel, &data, e.mode)?;
                w.info.system_files += 1;
                w.info.system_bytes += data.len() as u64;
                rest_used += data.len() as u64;
            }
        }
    }

    // 2. Files every layer writes: the upper layers overwrite the lower ones'.
    for k in 0..16 {
        let size = 1024 + rng.index(3072);
        let data = words.text(&mut rng, size);
        w.file(
            Path::new(&format!("etc/berth-bench/conf-{k:02}.conf")),
            &data,
            0o644,
        )?;
    }

    // 3. Upper layers delete some of layer 0's packages and files, and replace the
    //    contents of one directory (an opaque whiteout).
    if index > 0 {
        let l0 = Path::new("usr/share/berth-bench/l0");
        let p0 = (index - 1) * 10;
        for k in 0..3 {
            w.whiteout(l0, &format!(".wh.pkg-{:04}", p0 + k))?;
        }
        for k in 3..9 {
            w.whiteout(
                &l0.join(format!("pkg-{:04}/doc", p0 + k)),
                ".wh.file-000.txt",
            )?;
        }
        let opaque = l0.join(format!("pkg-{:04}/lib", p0 + 9));
        w.whiteout(&opaque, ".wh..wh..opq")?;
        let data = words.text(&mut rng, 2048);
        w.file(&opaque.join(format!("replaced-{index}.py")), &data, 0o644)?;
    }

    // 4. Packages: directories of small text files, with symlinks and a few
    //    hardlinks, and binaries keeping pace with the text.
    let (mut text_used, mut bin_used, mut bins) = (0u64, 0u64, 0u64);
    let mut p = 0usize;
    while text_used < text_budget || bin_used < bin_budget {
        let pkg = PathBuf::from(format!("usr/share/berth-bench/l{index}/pkg-{p:04}"));
        let nfiles = 20 + rng.index(41);
        for n in 0..nfiles {
            if text_used >= text_budget {
                break;
            }
            let (sub, ext) = [("doc", "txt"), ("lib", "py"), ("etc", "conf")][n % 3];
            let name = format!("file-{n:03}.{ext}");
            let path = pkg.join(sub).join(&name);
            let size = rng.log_uniform(64, 32 << 10);
            let data = words.text(&mut rng, usize::try_from(size).unwrap_or(0));
            w.file(&path, &data, 0o644)?;
            text_used += size;
            match rng.below(200) {
                0..=7 => w.symlink(
                    &pkg.join(sub).join(format!("link-{n:03}")),
                    Path::new(&name),
                )?,
                8..=9 => w.symlink(
                    &pkg.join(sub).join(format!("abs-{n:03}")),
                    &Path::new("/").join(&path),
                )?,
                10 => w.hardlink(&pkg.join(sub).join(format!("hard-{n:03}")), &path)?,
                _ => {}
            }
        }
        while bin_used < bin_budget
            && (text_used >= text_budget
                || u128::from(bin_used) * u128::from(text_budget)
                    < u128::from(text_used) * u128::from(bin_budget))
        {
            let size = rng
                .log_uniform(64 << 10, 4 << 20)
                .min(bin_budget - bin_used)
                .max(1);
            let data = random_bytes(&mut rng, usize::try_from(size).unwrap_or(0));
            w.file(&pkg.join(format!("bin/tool-{bins:04}")), &data, 0o755)?;
            bin_used += size;
            bins += 1;
        }
        p += 1;
    }

    // 5. Whatever the system files did not fill: generated shared-library-like files.
    let mut k = 0;
    while rest_used < rest_budget {
        let size = rng
            .log_uniform(16 << 10, 2 << 20)
            .min(rest_budget - rest_used);
        let data = binary_like(&mut rng, usize::try_from(size).unwrap_or(0));
        w.file(
            Path::new(&format!("usr/lib/berth-bench/l{index}/lib-{k:04}.so")),
            &data,
            0o755,
        )?;
        rest_used += size;
        k += 1;
    }

    let LayerWriter { tar, mut info, .. } = w;
    let sinks = tar.into_inner()?;
    sinks.gz.finish()?.flush()?;
    sinks.zst.finish()?.flush()?;
    let mut plain_w = sinks.plain;
    plain_w.flush()?;
    info.tar_bytes = sinks.bytes;
    info.diff_id = Some(Digest::from_sha256(&sinks.hash.finalize()));
    info.gz_bytes = fs::metadata(&gz)?.len();
    info.zst_bytes = fs::metadata(&zst)?.len();
    Ok(info)
}

// ---------------------------------------------------------------------------------
// Timed cases

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Gzip,
    Zstd,
    Plain,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
            Format::Plain => "plain tar",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
            Format::Plain => "plain",
        }
    }

    fn compression(self) -> Compression {
        match self {
            Format::Gzip => Compression::Gzip,
            Format::Zstd => Compression::Zstd,
            Format::Plain => Compression::None,
        }
    }

    fn tar_flags(self) -> &'static [&'static str] {
        match self {
            Format::Gzip => &["-xzf"],
            Format::Zstd => &["--zstd", "-xf"],
            Format::Plain => &["-xf"],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `apply_layer` (native) of every layer in order into one directory.
    Berth,
    /// `tar -x` of every layer in order into one directory.
    Tar,
    /// `apply_layer` (overlay) of every layer into its own directory, all at once.
    BerthParallel,
    /// One `tar -x` process per layer into its own directory, all at once.
    TarParallel,
}

impl Variant {
    fn key(self) -> &'static str {
        match self {
            Variant::Berth => "berth",
            Variant::Tar => "tar",
            Variant::BerthParallel => "berth_parallel",
            Variant::TarParallel => "tar_parallel",
        }
    }

    fn describe(self, f: Format, zstd_via_pipe: bool) -> String {
        let tar_cmd = if f == Format::Zstd && zstd_via_pipe {
            "zstd -dc | tar -xf -".to_string()
        } else {
            format!("tar {}", f.tar_flags().join(" "))
        };
        match self {
            Variant::Berth => "berth apply_layer (native, in order) + sync_root".into(),
            Variant::Tar => format!("{tar_cmd} (in order) + sync -f"),
            Variant::BerthParallel => {
                "berth apply_layer (overlay, a dir per layer, all at once) + sync_root".into()
            }
            Variant::TarParallel => format!("{tar_cmd} (a dir per layer, all at once) + sync -f"),
        }
    }

    fn is_berth(self) -> bool {
        matches!(self, Variant::Berth | Variant::BerthParallel)
    }
}

/// One timed case.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Unpacking all layers.
    apply: Duration,
    /// The final sync.
    sync: Duration,
    /// User CPU seconds: the process's own for berth (helper threads included), its
    /// waited-for children's for tar (tar, and the gzip or zstd it runs).
    user_s: f64,
    /// System CPU seconds, the same way.
    sys_s: f64,
}

impl Sample {
    fn total(&self) -> Duration {
        self.apply + self.sync
    }
}

/// (user, system) CPU seconds from `/proc/self/stat`: this process's own (exited
/// threads included), or its waited-for children's. USER_HZ is 100 on Linux.
#[allow(clippy::cast_precision_loss)]
fn cpu_times(children: bool) -> (f64, f64) {
    let Ok(stat) = fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the parenthesised command name; utime is field 14, cutime 16.
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return (0.0, 0.0);
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let at = if children { 13 } else { 11 };
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) as f64 / 100.0;
    (tick(at), tick(at + 1))
}

fn drop_caches() -> anyhow::Result<()> {
    let _ = Command::new("sync").status();
    fs::write("/proc/sys/vm/drop_caches", "3\n")
        .context("writing /proc/sys/vm/drop_caches (needs root and a writable /proc/sys)")
}

/// A `tar -x` of one layer into `dest`, started (not waited for).
fn spawn_tar(
    layer: &Layer,
    f: Format,
    dest: &Path,
    zstd_via_pipe: bool,
) -> anyhow::Result<Vec<std::process::Child>> {
    if f == Format::Zstd && zstd_via_pipe {
        let mut z = Command::new("zstd")
            .arg("-dc")
            .arg(layer.path(f))
            .stdout(Stdio::piped())
            .spawn()
            .context("running zstd")?;
        let out = z.stdout.take().context("zstd stdout")?;
        let t = Command::new("tar")
            .args(["-xf", "-", "-C"])
            .arg(dest)
            .stdin(out)
            .spawn()
            .context("running tar")?;
        return Ok(vec![t, z]);
    }
    let t = Command::new("tar")
        .args(f.tar_flags())
        .arg(layer.path(f))
        .arg("-C")
        .arg(dest)
        .spawn()
        .context("running tar")?;
    Ok(vec![t])
}

fn wait_all(children: Vec<std::process::Child>) -> anyhow::Result<()> {
    for mut c in children {
        let st = c.wait()?;
        if !st.success() {
            bail!("tar failed: {st}");
        }
    }
    Ok(())
}

fn sync_dir(dest: &Path) -> anyhow::Result<()> {
    let st = Command::new("sync").arg("-f").arg(dest).status()?;
    if !st.success() {
        bail!("sync -f {} failed: {st}", dest.display());
    }
    Ok(())
}

/// Runs one case into the fresh directory `dest`.
fn run_case(
    v: Variant,
    f: Format,
    layers: &[Layer],
    dest: &Path,
    zstd_via_pipe: bool,
) -> anyhow::Result<Sample> {
    fs::create_dir(dest)?;
    let per_layer: Vec<PathBuf> = layers
        .iter()
        .map(|l| dest.join(format!("l{}", l.index)))
        .collect();
    if matches!(v, Variant::BerthParallel | Variant::TarParallel) {
        for d in &per_layer {
            fs::create_dir(d)?;
        }
    }
    let cpu0 = cpu_times(!v.is_berth());
    let t0 = Instant::now();
    match v {
        Variant::Berth => {
            for l in layers {
                let file = File::open(l.path(f))?;
                let applied = apply_layer(
                    file,
                    f.compression(),
                    dest,
                    WhiteoutMode::Native,
                    &ApplyOptions {
                        expected_diff_id: l.diff_id.as_ref(),
                        ..ApplyOptions::default()
                    },
                )
                .with_context(|| format!("berth: layer {} ({})", l.index, f.name()))?;
                if applied.uncompressed_size != l.tar_bytes {
                    bail!(
                        "layer {}: applied {} bytes, built {}",
                        l.index,
                        applied.uncompressed_size,
                        l.tar_bytes
                    );
                }
            }
        }
        Variant::Tar => {
            for l in layers {
                wait_all(spawn_tar(l, f, dest, zstd_via_pipe)?)?;
            }
        }
        Variant::BerthParallel => {
            thread::scope(|s| -> anyhow::Result<()> {
                let handles: Vec<_> = layers
                    .iter()
                    .zip(&per_layer)
                    .map(|(l, d)| {
                        thread::Builder::new()
                            .name(format!("bench-unpack-{}", l.index))
                            .spawn_scoped(s, move || -> anyhow::Result<()> {
                                let file = File::open(l.path(f))?;
                                apply_layer(
                                    file,
                                    f.compression(),
                                    d,
                                    WhiteoutMode::Overlay,
                                    &ApplyOptions {
                                        expected_diff_id: l.diff_id.as_ref(),
                                        ..ApplyOptions::default()
                                    },
                                )
                                .with_context(|| {
                                    format!("berth parallel: layer {} ({})", l.index, f.name())
                                })?;
                                Ok(())
                            })
                    })
                    .collect::<Result<_, _>>()?;
                for h in handles {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("an unpack thread panicked"))??;
                }
                Ok(())
            })?;
        }
        Variant::TarParallel => {
            let mut children = Vec::new();
            for (l, d) in layers.iter().zip(&per_layer) {
                children.extend(spawn_tar(l, f, d, zstd_via_pipe)?);
            }
            wait_all(children)?;
        }
    }
    let t1 = Instant::now();
    if v.is_berth() {
        sync_root(dest)?;
    } else {
        sync_dir(dest)?;
    }
    let t2 = Instant::now();
    let cpu1 = cpu_times(!v.is_berth());
    Ok(Sample {
        apply: t1 - t0,
        sync: t2 - t1,
        user_s: cpu1.0 - cpu0.0,
        sys_s: cpu1.1 - cpu0.1,
    })
}

/// Microseconds per `creat` of an empty file, `n` of them in the fresh directory
/// `dir` (kept: deleting them would slow the next creates down). A healthy filesystem
/// takes a few µs; ext4 without a journal, shortly after many files were deleted,
/// takes tens to hundreds, and every unpack figure suffers with it.
#[allow(clippy::cast_precision_loss)]
fn probe_creates(dir: &Path, n: usize) -> anyhow::Result<f64> {
    fs::create_dir(dir)?;
    let t = Instant::now();
    for i in 0..n {
        File::create(dir.join(format!("f{i}")))?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64)
}

/// The probe, printed with a warning when it looks slow.
fn report_probe(when: &str, us: f64) {
    println!(
        "  filesystem probe ({when}): {PROBE_FILES} empty files created at {us:.1} us each{}",
        if us > PROBE_SLOW_US {
            " -- SLOW: recently freed inodes (ext4 without a journal skips inodes freed in the \
             last 60 s, 360 s while their inode table block is dirty); these figures are \
             pessimistic, run again after a few quiet minutes"
        } else {
            ""
        }
    );
}

/// Counts of an unpacked tree: (regular files, directories, symlinks, other, bytes).
fn tree_counts(root: &Path) -> (u64, u64, u64, u64, u64) {
    let mut c = (0, 0, 0, 0, 0);
    let mut stack = vec![root.to_path_buf()];
    let mut seen = HashSet::new();
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            let ft = md.file_type();
            if ft.is_dir() {
                c.1 += 1;
                stack.push(e.path());
            } else if ft.is_symlink() {
                c.2 += 1;
            } else if ft.is_file() {
                c.0 += 1;
                if seen.insert((md.dev(), md.ino())) {
                    c.4 += md.len();
                }
            } else {
                c.3 += 1;
            }
        }
    }
    c
}

// ---------------------------------------------------------------------------------
// Profile: the parts alone

/// Reads `r` to its end through a 256 KiB buffer, handing each piece to `each`.
fn drain<R: Read>(mut r: R, mut each: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut buf = vec![0u8; READ_BUF];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => {
                each(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One thread: decompress every layer in-process (the decoders `apply_layer` uses).
fn profile_decode(layers: &[Layer], f: Format) -> anyhow::Result<Duration> {
    let t = Instant::now();
    for l in layers {
        let file = File::open(l.path(f))?;
        let n = match f {
            Format::Gzip => drain(flate2::read::MultiGzDecoder::new(file), |_| {})?,
            Format::Zstd => drain(zstd::stream::read::Decoder::new(file)?, |_| {})?,
            Format::Plain => drain(file, |_| {})?,
        };
        if n != l.tar_bytes {
            bail!(
                "layer {}: decoded {n} bytes, built {}",
                l.index,
                l.tar_bytes
            );
        }
    }
    Ok(t.elapsed())
}

/// sha256 of every plain tar stream (what `apply_layer` hashes for the diff_id).
fn profile_sha256(layers: &[Layer]) -> anyhow::Result<Duration> {
    let t = Instant::now();
    for l in layers {
        let mut h = Sha256::new();
        drain(File::open(&l.plain)?, |b| h.update(b))?;
        let d = Digest::from_sha256(&h.finalize());
        if Some(&d) != l.diff_id.as_ref() {
            bail!("layer {}: sha256 differs from its diff_id", l.index);
        }
    }
    Ok(t.elapsed())
}

/// `gzip -dc` / `zstd -dc` of every layer to /dev/null, one after another.
fn profile_cli(layers: &[Layer], f: Format) -> anyhow::Result<Duration> {
    let prog = match f {
        Format::Gzip => "gzip",
        Format::Zstd => "zstd",
        Format::Plain => "cat",
    };
    let t = Instant::now();
    for l in layers {
        let mut cmd = Command::new(prog);
        if f != Format::Plain {
            cmd.arg("-dc");
        }
        let st = cmd
            .arg(l.path(f))
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("running {prog}"))?;
        if !st.success() {
            bail!("{prog} failed: {st}");
        }
    }
    Ok(t.elapsed())
}

// ---------------------------------------------------------------------------------
// Running it all

#[allow(clippy::cast_precision_loss)]
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        mb(bytes) / s
    } else {
        0.0
    }
}

fn has_program(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The median sample of each field separately, in ms.
struct Medians {
    total_ms: f64,
    apply_ms: f64,
    sync_ms: f64,
    user_s: f64,
    sys_s: f64,
    totals_ms: Vec<f64>,
}

fn medians(samples: &[Sample]) -> Medians {
    let f = |g: &dyn Fn(&Sample) -> f64| median(&samples.iter().map(g).collect::<Vec<_>>());
    Medians {
        total_ms: f(&|s| ms(s.total())),
        apply_ms: f(&|s| ms(s.apply)),
        sync_ms: f(&|s| ms(s.sync)),
        user_s: f(&|s| s.user_s),
        sys_s: f(&|s| s.sys_s),
        totals_ms: samples.iter().map(|s| r2(ms(s.total()))).collect(),
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn ms_dur(ms: f64) -> Duration {
    Duration::from_micros((ms * 1000.0).max(0.0) as u64)
}

/// Runs the benchmark.
#[allow(clippy::too_many_lines)]
pub fn run(args: Args) -> anyhow::Result<()> {
    let load_start = crate::common::load_average();
    println!("{}", crate::common::machine());
    if args.layers == 0 || args.runs == 0 || args.size_mb == 0 {
        bail!("--layers, --runs and --size-mb must be at least 1");
    }
    if !has_program("tar") {
        bail!("GNU tar is needed (apt-get install tar)");
    }
    if !has_program("zstd") {
        bail!("zstd is needed for the tar side of the zstd case (apt-get install zstd)");
    }
    let tar_help = Command::new("tar").arg("--help").output()?;
    let zstd_via_pipe = !String::from_utf8_lossy(&tar_help.stdout).contains("--zstd");
    if args.drop_caches {
        drop_caches().context("--drop-caches")?;
    }
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("berth-bench-unpack-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;
    let root = work.path().to_path_buf();
    println!(
        "unpack: {} layers, {} MB of file content (seed {}), {} runs per case, {} page cache; working directory {}",
        args.layers,
        args.size_mb,
        args.seed,
        args.runs,
        if args.drop_caches { "cold (dropped before every case)" } else { "warm" },
        root.display()
    );

    // --- Build.
    let total = args.size_mb * 1_000_000;
    let weight_sum: u64 = (1..=args.layers as u64).sum();
    let budgets: Vec<u64> = (0..args.layers as u64)
        .map(|i| total * (args.layers as u64 - i) / weight_sum)
        .collect();
    let rest_budgets: Vec<u64> = budgets
        .iter()
        .map(|b| b - b * TEXT_PCT / 100 - b * BIN_PCT / 100)
        .collect();
    let t_build = Instant::now();
    let (system_scanned, system_plan) = if args.no_system_files {
        (0, vec![Vec::new(); args.layers])
    } else {
        let all = scan_system(&["/usr/lib", "/usr/share"]);
        (all.len(), sample_system(&all, &rest_budgets))
    };
    let words = Words::new(args.seed);
    println!(
        "building the layers (.tar, .tar.gz at flate2 level 6, .tar.zst at zstd level 3){}...",
        if args.no_system_files {
            String::new()
        } else {
            format!(
                "; sampling {} of {} system files and symlinks under /usr/lib and /usr/share",
                system_plan.iter().map(Vec::len).sum::<usize>(),
                thousands(system_scanned as u64)
            )
        }
    );
    let layers: Vec<Layer> = thread::scope(|s| {
        let handles: Vec<_> = budgets
            .iter()
            .zip(&system_plan)
            .enumerate()
            .map(|(i, (&b, sys))| {
                let (root, words) = (&root, &words);
                s.spawn(move || build_layer(root, i, b, sys, words, args.seed))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a layer builder panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let build_time = t_build.elapsed();
    let sum = |g: &dyn Fn(&Layer) -> u64| layers.iter().map(g).sum::<u64>();
    let tar_total = sum(&|l| l.tar_bytes);
    let ratio = |a: u64, b: u64| if b > 0 { mb(a) / mb(b) } else { 0.0 };
    for l in &layers {
        println!(
            "  layer {}: {} entries ({} files, {} dirs, {} symlinks, {} hardlinks, {} whiteouts; {} system files, {:.1} MB), tar {:.1} MB, gzip {:.1} MB ({:.2}x), zstd {:.1} MB ({:.2}x), diff_id {}",
            l.index,
            thousands(l.entries()),
            thousands(l.files),
            thousands(l.dirs),
            thousands(l.symlinks),
            l.hardlinks,
            l.whiteouts,
            thousands(l.system_files),
            mb(l.system_bytes),
            mb(l.tar_bytes),
            mb(l.gz_bytes),
            ratio(l.tar_bytes, l.gz_bytes),
            mb(l.zst_bytes),
            ratio(l.tar_bytes, l.zst_bytes),
            l.diff_id.as_ref().map_or("?", |d| &d.as_str()[..19]),
        );
    }
    println!(
        "  image: {} entries, content {:.1} MB, tar {:.1} MB, gzip {:.1} MB ({:.2}x), zstd {:.1} MB ({:.2}x); built in {:.1} s",
        thousands(sum(&|l| l.entries())),
        mb(sum(&|l| l.content_bytes)),
        mb(tar_total),
        mb(sum(&|l| l.gz_bytes)),
        ratio(tar_total, sum(&|l| l.gz_bytes)),
        mb(sum(&|l| l.zst_bytes)),
        ratio(tar_total, sum(&|l| l.zst_bytes)),
        build_time.as_secs_f64()
    );
    if zstd_via_pipe {
        println!("  note: this tar has no --zstd; the zstd case runs `zstd -dc layer | tar -xf -`");
    }
    sync_root(&root)?;

    // --- Timed runs.
    let cases: Vec<(Format, Vec<Variant>)> = vec![
        (
            Format::Gzip,
            vec![
                Variant::Berth,
                Variant::Tar,
                Variant::BerthParallel,
                Variant::TarParallel,
            ],
        ),
        (
            Format::Zstd,
            vec![
                Variant::Berth,
                Variant::Tar,
                Variant::BerthParallel,
                Variant::TarParallel,
            ],
        ),
        (Format::Plain, vec![Variant::Berth, Variant::Tar]),
    ];
    let mut samples: Vec<((Format, Variant), Vec<Sample>)> = Vec::new();
    for (f, vs) in &cases {
        for v in vs {
            samples.push(((*f, *v), Vec::new()));
        }
    }
    // Every tree stays until the end when the filesystem has room: ext4 without a
    // journal (this VM's root) skips inodes freed in the last 60 s (360 s while their
    // inode table block is dirty) when allocating, scanning past each one, so a case
    // run right after deleting a tree of tens of thousands of files spends most of its
    // time in the kernel's inode allocator (`recently_deleted`), not unpacking.
    let ncases: usize = cases.iter().map(|(_, vs)| vs.len()).sum();
    let entries = sum(&|l| l.entries());
    let need_bytes = (args.runs * ncases) as u64 * (tar_total + entries * 4096);
    let need_inodes = (args.runs * ncases) as u64 * entries;
    let keep_trees = nix::sys::statvfs::statvfs(&root).is_ok_and(|v| {
        let avail = v.blocks_available() * v.fragment_size();
        avail > need_bytes + need_bytes / 5 + (1 << 30) && v.files_available() > need_inodes * 2
    });
    if keep_trees {
        println!(
            "  every unpacked tree is kept until the end (about {:.1} GB, {} inodes): deleting one would slow the next case down (ext4 without a journal skips recently freed inodes)",
            mb(need_bytes) / 1000.0,
            thousands(need_inodes)
        );
    } else {
        println!(
            "  warning: not enough free space to keep every tree ({:.1} GB); each is deleted after its case, which can slow the next one down (ext4 without a journal skips recently freed inodes)",
            mb(need_bytes) / 1000.0
        );
    }
    let probe_start = probe_creates(&root.join("probe-start"), PROBE_FILES)?;
    report_probe("start", probe_start);
    let mut profiles: Vec<Value> = Vec::new();
    let mut checked = Vec::new();
    for run in 0..args.runs {
        println!("run {}/{}:", run + 1, args.runs);
        for (f, vs) in &cases {
            // The variants take turns going first.
            let mut order = vs.clone();
            let first = run % order.len();
            order.rotate_left(first);
            for v in order {
                let dest = root.join(format!("run-{run}-{}-{}", f.key(), v.key()));
                if args.drop_caches {
                    drop_caches()?;
                }
                let s = run_case(v, *f, &layers, &dest, zstd_via_pipe)?;
                println!(
                    "  {:<9} {:<78} {:>8.0} ms (unpack {:>6.0} + sync {:>5.0}), {:>6.1} MB/s, CPU {:.2} s user + {:.2} s sys",
                    f.name(),
                    v.describe(*f, zstd_via_pipe),
                    ms(s.total()),
                    ms(s.apply),
                    ms(s.sync),
                    mb_s(tar_total, s.total()),
                    s.user_s,
                    s.sys_s
                );
                if let Some((_, list)) = samples.iter_mut().find(|(k, _)| *k == (*f, v)) {
                    list.push(s);
                }
                if run == 0 && *f == Format::Gzip && matches!(v, Variant::Berth | Variant::Tar) {
                    checked.push((v, tree_counts(&dest)));
                }
                let kept = keep_trees || (args.keep && run + 1 == args.runs);
                if !kept {
                    fs::remove_dir_all(&dest)
                        .with_context(|| format!("removing {}", dest.display()))?;
                    sync_root(&root)?;
                }
            }
        }
        if !args.no_profile {
            let mut p = serde_json::Map::new();
            for f in [Format::Gzip, Format::Zstd] {
                if args.drop_caches {
                    drop_caches()?;
                }
                p.insert(
                    format!("{}_decode_ms", f.key()),
                    json!(r2(ms(profile_decode(&layers, f)?))),
                );
                if args.drop_caches {
                    drop_caches()?;
                }
                p.insert(
                    format!("{}_cli_decode_ms", f.key()),
                    json!(r2(ms(profile_cli(&layers, f)?))),
                );
            }
            if args.drop_caches {
                drop_caches()?;
            }
            p.insert("sha256_ms".into(), json!(r2(ms(profile_sha256(&layers)?))));
            profiles.push(Value::Object(p));
        }
    }
    if !checked.is_empty() {
        for (v, (files, dirs, links, other, bytes)) in &checked {
            println!(
                "  check, run 1 gzip, {:<5} tree: {} files, {} dirs, {} symlinks, {} other, {:.1} MB of file data",
                v.key(),
                thousands(*files),
                thousands(*dirs),
                thousands(*links),
                other,
                mb(*bytes)
            );
        }
        println!(
            "    (tar keeps the whiteout entries as empty files and the whited-out files; berth removes both)"
        );
    }

    let probe_end = probe_creates(&root.join("probe-end"), PROBE_FILES)?;
    report_probe("end", probe_end);

    // --- Results.
    let get = |f: Format, v: Variant| -> Option<Medians> {
        samples
            .iter()
            .find(|(k, _)| *k == (f, v))
            .map(|(_, s)| medians(s))
    };
    println!(
        "results: median of {} runs; MB/s = uncompressed tar bytes ({:.1} MB) / time; with the final sync (syncfs) and without",
        args.runs,
        mb(tar_total)
    );
    println!(
        "  {:<10} {:>11} {:>11} {:>9} {:>11} {:>9} | {:>16} {:>16} {:>9} | {:>9} {:>9}",
        "layers",
        "berth ms",
        "tar ms",
        "berth/tar",
        "berth MB/s",
        "tar MB/s",
        "berth no-sync ms",
        "tar no-sync ms",
        "ratio",
        "berth CPU usr+sys",
        "tar CPU usr+sys"
    );
    let mut results = serde_json::Map::new();
    let mut gzip_ratio = None;
    for (f, _) in &cases {
        let (Some(b), Some(t)) = (get(*f, Variant::Berth), get(*f, Variant::Tar)) else {
            continue;
        };
        let r = if t.total_ms > 0.0 {
            b.total_ms / t.total_ms
        } else {
            0.0
        };
        let r_ns = if t.apply_ms > 0.0 {
            b.apply_ms / t.apply_ms
        } else {
            0.0
        };
        if *f == Format::Gzip {
            gzip_ratio = Some(r);
        }
        println!(
            "  {:<10} {:>11.0} {:>11.0} {:>8.2}x {:>11.1} {:>9.1} | {:>16.0} {:>16.0} {:>8.2}x | {:>8.2}+{:.2}s {:>10.2}+{:.2}s",
            f.name(),
            b.total_ms,
            t.total_ms,
            r,
            mb_s(tar_total, ms_dur(b.total_ms)),
            mb_s(tar_total, ms_dur(t.total_ms)),
            b.apply_ms,
            t.apply_ms,
            r_ns,
            b.user_s,
            b.sys_s,
            t.user_s,
            t.sys_s
        );
        let mut o = json!({
            "berth_ms": r2(b.total_ms),
            "berth_unpack_ms": r2(b.apply_ms),
            "berth_sync_ms": r2(b.sync_ms),
            "berth_cpu_user_s": r2(b.user_s),
            "berth_cpu_sys_s": r2(b.sys_s),
            "berth_runs_ms": b.totals_ms,
            "tar_ms": r2(t.total_ms),
            "tar_unpack_ms": r2(t.apply_ms),
            "tar_sync_ms": r2(t.sync_ms),
            "tar_cpu_user_s": r2(t.user_s),
            "tar_cpu_sys_s": r2(t.sys_s),
            "tar_runs_ms": t.totals_ms,
            "ratio": r2(r),
            "ratio_without_sync": r2(r_ns),
            "berth_mb_s": r2(mb_s(tar_total, ms_dur(b.total_ms))),
            "tar_mb_s": r2(mb_s(tar_total, ms_dur(t.total_ms))),
            "compressed_mb": r2(mb(sum(&|l| l.compressed_bytes(*f)))),
        });
        if let (Some(bp), Some(tp)) = (
            get(*f, Variant::BerthParallel),
            get(*f, Variant::TarParallel),
        ) {
            if let Some(obj) = o.as_object_mut() {
                obj.insert("berth_parallel_ms".into(), json!(r2(bp.total_ms)));
                obj.insert("berth_parallel_unpack_ms".into(), json!(r2(bp.apply_ms)));
                obj.insert("berth_parallel_cpu_user_s".into(), json!(r2(bp.user_s)));
                obj.insert("berth_parallel_cpu_sys_s".into(), json!(r2(bp.sys_s)));
                obj.insert("berth_parallel_runs_ms".into(), json!(bp.totals_ms));
                obj.insert("tar_parallel_ms".into(), json!(r2(tp.total_ms)));
                obj.insert("tar_parallel_unpack_ms".into(), json!(r2(tp.apply_ms)));
                obj.insert("tar_parallel_cpu_user_s".into(), json!(r2(tp.user_s)));
                obj.insert("tar_parallel_cpu_sys_s".into(), json!(r2(tp.sys_s)));
                obj.insert("tar_parallel_runs_ms".into(), json!(tp.totals_ms));
            }
        }
        results.insert(f.key().into(), o);
    }
    println!("  parallel (overlay-style, a directory per layer, all layers at once; with the final sync):");
    for (f, _) in &cases {
        let (Some(bp), Some(tp), Some(b)) = (
            get(*f, Variant::BerthParallel),
            get(*f, Variant::TarParallel),
            get(*f, Variant::Berth),
        ) else {
            continue;
        };
        println!(
            "  {:<10} berth {:>7.0} ms ({:.1} MB/s, {:.2}x berth in order), tar {:>7.0} ms ({:.1} MB/s); berth/tar {:.2}x",
            f.name(),
            bp.total_ms,
            mb_s(tar_total, ms_dur(bp.total_ms)),
            if b.total_ms > 0.0 { bp.total_ms / b.total_ms } else { 0.0 },
            tp.total_ms,
            mb_s(tar_total, ms_dur(tp.total_ms)),
            if tp.total_ms > 0.0 { bp.total_ms / tp.total_ms } else { 0.0 },
        );
    }
    let profile = if profiles.is_empty() {
        Value::Null
    } else {
        let key_med = |k: &str| {
            median(
                &profiles
                    .iter()
                    .filter_map(|p| p.get(k).and_then(Value::as_f64))
                    .collect::<Vec<_>>(),
            )
        };
        println!(
            "profile (median of {} runs, one thread, the parts alone):",
            profiles.len()
        );
        let mut out = serde_json::Map::new();
        for (k, label) in [
            (
                "gzip_decode_ms",
                "gzip decode in-process (flate2 + zlib-rs, MultiGzDecoder)",
            ),
            ("gzip_cli_decode_ms", "gzip -dc > /dev/null"),
            ("zstd_decode_ms", "zstd decode in-process (zstd crate)"),
            ("zstd_cli_decode_ms", "zstd -dc > /dev/null"),
            ("sha256_ms", "sha256 of the tar bytes (the diff_id)"),
        ] {
            let v = key_med(k);
            println!(
                "  {label:<58} {v:>8.0} ms  {:>7.1} MB/s",
                mb_s(tar_total, ms_dur(v))
            );
            out.insert(k.into(), json!(r2(v)));
        }
        Value::Object(out)
    };
    if let Some(r) = gzip_ratio {
        println!(
            "target: gzip, berth <= 1.2x tar's time (with sync): {:.2}x -> {}",
            r,
            if r <= 1.2 { "MET" } else { "MISSED" }
        );
    }
    let json = json!({
        "bench": "unpack",
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "load_start": load_start,
        "load_end": crate::common::load_average(),
        "cache": if args.drop_caches { "cold" } else { "warm" },
        "runs": args.runs,
        "seed": args.seed,
        "image": {
            "layers": layers.iter().map(|l| json!({
                "entries": l.entries(),
                "files": l.files,
                "dirs": l.dirs,
                "symlinks": l.symlinks,
                "hardlinks": l.hardlinks,
                "whiteouts": l.whiteouts,
                "system_files": l.system_files,
                "content_mb": r2(mb(l.content_bytes)),
                "tar_mb": r2(mb(l.tar_bytes)),
                "gzip_mb": r2(mb(l.gz_bytes)),
                "zstd_mb": r2(mb(l.zst_bytes)),
                "diff_id": l.diff_id.as_ref().map(Digest::as_str),
            })).collect::<Vec<_>>(),
            "tar_mb": r2(mb(tar_total)),
            "gzip_mb": r2(mb(sum(&|l| l.gz_bytes))),
            "zstd_mb": r2(mb(sum(&|l| l.zst_bytes))),
            "entries": sum(&|l| l.entries()),
            "system_files": sum(&|l| l.system_files),
            "build_s": r2(build_time.as_secs_f64()),
        },
        "tar_zstd_via_pipe": zstd_via_pipe,
        "trees_kept_until_end": keep_trees,
        "create_probe_us": { "start": r2(probe_start), "end": r2(probe_end) },
        "results": Value::Object(results),
        "profile": profile,
        "gzip_target_met": gzip_ratio.map(|r| r <= 1.2),
    });
    if args.keep {
        let kept = work.keep();
        println!("kept {}", kept.display());
    } else {
        let t = Instant::now();
        work.close().context("removing the working directory")?;
        println!(
            "removed the working directory in {:.1} s (on ext4 without a journal, wait about 6 minutes before the next run: inodes freed in the last 60 s, 360 s while their inode table block is dirty, slow allocation down)",
            t.elapsed().as_secs_f64()
        );
    }
    println!("{json}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            let x = a.log_uniform(64, 32 << 10);
            assert_eq!(x, b.log_uniform(64, 32 << 10));
            assert!((64..32 << 10).contains(&x));
        }
        let w = Words::new(1);
        let t = w.text(&mut a, 1000);
        assert_eq!(t.len(), 1000);
        assert_eq!(binary_like(&mut a, 10_000).len(), 10_000);
    }

    #[test]
    fn a_small_layer_round_trips_through_apply_layer() {
        let dir = tempfile::tempdir().unwrap();
        let words = Words::new(1);
        let l0 = build_layer(dir.path(), 0, 400_000, &[], &words, 1).unwrap();
        let l1 = build_layer(dir.path(), 1, 200_000, &[], &words, 1).unwrap();
        assert!(l0.content_bytes >= 400_000 && l1.whiteouts > 0);
        for f in [Format::Gzip, Format::Zstd, Format::Plain] {
            let dest = dir.path().join(format!("out-{}", f.key()));
            run_case(Variant::Berth, f, &[l0.clone(), l1.clone()], &dest, false).unwrap();
            assert!(dest.join("etc/berth-bench/conf-00.conf").is_file());
            assert!(!dest.join("usr/share/berth-bench/l0/pkg-0000").exists());
            let par = dir.path().join(format!("par-{}", f.key()));
            run_case(
                Variant::BerthParallel,
                f,
                &[l0.clone(), l1.clone()],
                &par,
                false,
            )
            .unwrap();
        }
    }
}
