//! Platforms (`linux/arm64/v8`): parsing, the host's, matching and preference as
//! containerd's `platforms.Only()`, and choosing a manifest from an index.
//!
//! A wanted platform runs, best first: itself; for `amd64/vN` the lower levels down to
//! `amd64` (≡ `v1`), then `386`; for `arm64` (≡ `v8`) lower `arm64` variants, then
//! `arm/v8` down to `arm/v5`; for `arm/vN` `arm/vN` down to `arm/v5`. Variant aliases
//! are normalised before comparing (`arm64/v8` ≡ `arm64`, `amd64/v1` ≡ `amd64`,
//! `arm` ≡ `arm/v7`), and among equals the entry whose variant is spelled exactly as
//! wanted wins, then the index order.

use std::fmt;

use oci_spec::image::{Arch, Descriptor, Os};

use super::media::{self, DOCKER_REFERENCE_TYPE};
use super::Index;
use crate::{EngineError, Result};

/// The platform an image is built for or a host runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system, Go's `GOOS` names (`linux`).
    pub os: String,
    /// CPU architecture, Go's `GOARCH` names (`amd64`, `arm64`, `arm`, `386`, …).
    pub architecture: String,
    /// CPU variant (`v8`, `v7`, `v3`…), if stated.
    pub variant: Option<String>,
    /// OS version (used on Windows; carried, not matched, on Linux).
    pub os_version: Option<String>,
    /// Required OS features (carried, not matched, on Linux).
    pub os_features: Vec<String>,
}

impl Platform {
    /// A platform from its parts; architecture aliases (`x86_64`, `aarch64`, `armhf`…)
    /// become Go's names, everything is lower-cased.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let os = os.trim().to_ascii_lowercase();
        let variant = variant
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty());
        let (architecture, variant) = match architecture.trim().to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => ("amd64".to_string(), variant),
            "i386" | "i686" => ("386".to_string(), variant),
            "aarch64" => ("arm64".to_string(), variant),
            "armhf" => ("arm".to_string(), Some("v7".to_string())),
            "armel" => ("arm".to_string(), Some("v6".to_string())),
            other => (other.to_string(), variant),
        };
        Platform {
            os,
            architecture,
            variant,
            os_version: None,
            os_features: Vec::new(),
        }
    }

    /// Parses `os/arch[/variant]` (`linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`).
    pub fn parse(raw: &str) -> Result<Self> {
        let parts: Vec<&str> = raw.split('/').collect();
        let bad = || {
            EngineError::InvalidArgument(format!(
                "platform {raw:?} must be os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
            ))
        };
        if !(2..=3).contains(&parts.len()) {
            return Err(bad());
        }
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        };
        if !parts.iter().all(|p| ok(p)) {
            return Err(bad());
        }
        Ok(Platform::new(parts[0], parts[1], parts.get(2).copied()))
    }

    /// The platform of this host: `linux` and the running architecture in Go's names
    /// (`x86_64` → `amd64`, `aarch64` → `arm64/v8`, `arm` → `arm/v7` or the variant
    /// `/proc/cpuinfo` states, `x86` → `386`, `powerpc64` → `ppc64le`/`ppc64`,
    /// `loongarch64` → `loong64`; others as Rust names them).
    pub fn host() -> Self {
        let (arch, variant): (&str, Option<String>) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", Some("v8".into())),
            "arm" => (
                "arm",
                Some(arm_variant_from_cpuinfo().unwrap_or_else(|| "v7".into())),
            ),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "loongarch64" => ("loong64", None),
            "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
            "mips" if cfg!(target_endian = "little") => ("mipsle", None),
            other => (other, None),
        };
        Platform::new(std::env::consts::OS, arch, variant.as_deref())
    }

    /// From an OCI descriptor's platform.
    pub fn from_oci(p: &oci_spec::image::Platform) -> Self {
        let mut out = Platform::new(
            &p.os().to_string(),
            &p.architecture().to_string(),
            p.variant().as_deref(),
        );
        out.os_version = p.os_version().clone();
        out.os_features = p.os_features().clone().unwrap_or_default();
        out
    }

    /// As an OCI platform (for writing descriptors).
    pub fn to_oci(&self) -> oci_spec::image::Platform {
        let mut p = oci_spec::image::Platform::default();
        p.set_os(Os::from(self.os.as_str()));
        p.set_architecture(Arch::from(self.architecture.as_str()));
        p.set_variant(self.variant.clone());
        p.set_os_version(self.os_version.clone());
        p.set_os_features(if self.os_features.is_empty() {
            None
        } else {
            Some(self.os_features.clone())
        });
        p
    }

    /// Whether an image built for `candidate` runs where `self` is wanted.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.rank(candidate).is_some()
    }

    /// How well `candidate` suits `self`: `None` if it cannot run, else a rank where
    /// lower is better and `0` is an exact match (after normalising variants).
    pub fn rank(&self, candidate: &Platform) -> Option<u32> {
        if self.os != candidate.os {
            return None;
        }
        let (wa, wv) = normalize(&self.architecture, self.variant.as_deref());
        let (ca, cv) = normalize(&candidate.architecture, candidate.variant.as_deref());
        match (wa.as_str(), ca.as_str()) {
            ("amd64", "amd64") => match (amd64_level(&wv), amd64_level(&cv)) {
                (Some(w), Some(c)) if c <= w => Some(w - c),
                _ => (wv == cv).then_some(0),
            },
            ("amd64", "386") => Some(FALLBACK),
            ("arm64", "arm64") => match (arm64_level(&wv), arm64_level(&cv)) {
                (Some(w), Some(c)) if c <= w => Some(w - c),
                _ => (wv == cv).then_some(0),
            },
            ("arm64", "arm") => match arm_level(&cv) {
                Some(c) if (5..=8).contains(&c) => Some(FALLBACK + 8 - c),
                _ => None,
            },
            ("arm", "arm") => match (arm_level(&wv), arm_level(&cv)) {
                (Some(w), Some(c)) if c <= w && c >= 5 => Some(w - c),
                _ => (wv == cv).then_some(0),
            },
            (w, c) => (w == c && wv == cv).then_some(0),
        }
    }
}

/// Rank offset of running another architecture's images (`386` on `amd64`, `arm` on
/// `arm64`): always after every same-architecture candidate.
const FALLBACK: u32 = 1000;

/// Architecture and variant as compared (containerd's `normalizeArch`).
fn normalize(arch: &str, variant: Option<&str>) -> (String, String) {
    let v = variant.unwrap_or("").to_ascii_lowercase();
    let a = arch.to_ascii_lowercase();
    match a.as_str() {
        "i386" | "386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let v = if v == "v1" { String::new() } else { v };
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            let v = match v.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".into(),
                _ => v,
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = match v.as_str() {
                "" | "7" => "v7".into(),
                "5" | "6" | "8" => format!("v{v}"),
                _ => v,
            };
            ("arm".into(), v)
        }
        _ => (a, v),
    }
}

/// `""` → 1, `"vN"` → N.
fn amd64_level(v: &str) -> Option<u32> {
    if v.is_empty() {
        return Some(1);
    }
    v.strip_prefix('v')?.parse().ok()
}

/// `""` → v8.0, `"vM[.n]"` → M·100 + n, so lower levels compare lower.
fn arm64_level(v: &str) -> Option<u32> {
    if v.is_empty() {
        return Some(800);
    }
    let rest = v.strip_prefix('v')?;
    let (major, minor) = match rest.split_once('.') {
        Some((m, n)) => (m.parse::<u32>().ok()?, n.parse::<u32>().ok()?),
        None => (rest.parse::<u32>().ok()?, 0),
    };
    if minor >= 100 {
        return None;
    }
    major.checked_mul(100)?.checked_add(minor)
}

/// `"vN"` → N.
fn arm_level(v: &str) -> Option<u32> {
    v.strip_prefix('v')?.parse().ok()
}

/// The ARM variant the kernel states (`CPU architecture: 7` → `v7`).
fn arm_variant_from_cpuinfo() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("cpu architecture"))?;
    let value = line.split_once(':')?.1.trim();
    match value {
        "AArch64" | "8" => Some("v8".into()),
        v if v.len() == 1 && v.as_bytes()[0].is_ascii_digit() => Some(format!("v{v}")),
        _ => None,
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        Platform::parse(s)
    }
}

/// Whether an index entry is a runnable image candidate at all: a manifest (not a
/// nested index or an artifact), not marked as an attestation or other reference
/// (`vnd.docker.reference.type`), and not for platform `unknown/unknown`.
fn is_image_entry(d: &Descriptor) -> bool {
    let is_manifest = matches!(
        media::document_kind(d.media_type().as_ref()),
        Some(media::DocumentKind::Manifest)
    );
    let is_reference = d
        .annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key(DOCKER_REFERENCE_TYPE));
    let unknown = d.platform().as_ref().is_some_and(|p| {
        p.os().to_string() == "unknown" || p.architecture().to_string() == "unknown"
    });
    is_manifest && !is_reference && !unknown && d.artifact_type().is_none()
}

/// Chooses the manifest of `index` that best suits `wanted` (see the module doc for
/// the order). Entries without a platform are taken only when no entry with one
/// matches (containerd's order); the caller checks the chosen image's config
/// platform. Attestations, artifacts and nested indexes are never chosen. If nothing
/// suits, the error is [`EngineError::Missing`] (kind NotFound) and lists what the
/// index offers.
pub fn select<'a>(index: &'a Index, wanted: &Platform) -> Result<&'a Descriptor> {
    let mut best: Option<((u8, u32, u8), &'a Descriptor)> = None;
    for d in index.manifests().iter().filter(|d| is_image_entry(d)) {
        let key = match d.platform() {
            None => (1, 0, 0),
            Some(p) => {
                let p = Platform::from_oci(p);
                let Some(rank) = wanted.rank(&p) else {
                    continue;
                };
                (0, rank, u8::from(p.variant != wanted.variant))
            }
        };
        // Strictly better only: among equals the first in index order stays.
        let better = match &best {
            None => true,
            Some((k, _)) => key < *k,
        };
        if better {
            best = Some((key, d));
        }
    }
    if let Some((_, d)) = best {
        return Ok(d);
    }
    let offered: Vec<String> = index
        .manifests()
        .iter()
        .filter(|d| is_image_entry(d))
        .filter_map(|d| {
            d.platform()
                .as_ref()
                .map(|p| Platform::from_oci(p).to_string())
        })
        .collect();
    Err(EngineError::Missing(format!(
        "the image has no variant for platform {wanted}; it offers {}",
        if offered.is_empty() {
            "no runnable image".to_string()
        } else {
            offered.join(", ")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
        assert_eq!(p("linux/arm64/v8").variant.as_deref(), Some("v8"));
        assert_eq!(p("Linux/x86_64").to_string(), "linux/amd64");
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64");
        assert_eq!(p("linux/armhf").to_string(), "linux/arm/v7");
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v1/x",
            "linux/am d64",
        ] {
            let e = Platform::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
        }
        let oci = p("linux/arm64/v8").to_oci();
        assert_eq!(Platform::from_oci(&oci), p("linux/arm64/v8"));
    }

    #[test]
    fn host_is_linux_in_go_names() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(h.to_string(), "linux/amd64");
        #[cfg(target_arch = "aarch64")]
        assert_eq!(h.to_string(), "linux/arm64/v8");
        assert!(h.matches(&h));
    }

    #[test]
    fn amd64() {
        let w = p("linux/amd64");
        assert_eq!(w.rank(&p("linux/amd64")), Some(0));
        assert_eq!(w.rank(&p("linux/amd64/v1")), Some(0));
        assert_eq!(w.rank(&p("linux/amd64/v2")), None);
        assert_eq!(w.rank(&p("linux/386")), Some(FALLBACK));
        assert_eq!(w.rank(&p("linux/arm64")), None);
        assert_eq!(w.rank(&p("windows/amd64")), None);
        let v3 = p("linux/amd64/v3");
        assert!(v3.rank(&p("linux/amd64/v3")) < v3.rank(&p("linux/amd64/v2")));
        assert!(v3.rank(&p("linux/amd64/v2")) < v3.rank(&p("linux/amd64")));
        assert!(v3.rank(&p("linux/amd64")) < v3.rank(&p("linux/386")));
        assert_eq!(v3.rank(&p("linux/amd64/v4")), None);
    }

    #[test]
    fn arm() {
        let w = p("linux/arm64/v8");
        assert_eq!(w.rank(&p("linux/arm64")), Some(0));
        assert_eq!(w.rank(&p("linux/arm64/v8")), Some(0));
        assert_eq!(p("linux/arm64").rank(&p("linux/arm64/v8")), Some(0));
        assert_eq!(w.rank(&p("linux/arm64/v9")), None);
        assert_eq!(w.rank(&p("linux/arm/v7")), Some(FALLBACK + 1));
        assert!(w.rank(&p("linux/arm/v8")) < w.rank(&p("linux/arm/v7")));
        assert_eq!(w.rank(&p("linux/amd64")), None);
        let v7 = p("linux/arm/v7");
        assert_eq!(v7.rank(&p("linux/arm")), Some(0));
        assert_eq!(v7.rank(&p("linux/arm/v6")), Some(1));
        assert_eq!(v7.rank(&p("linux/arm/v8")), None);
        assert_eq!(v7.rank(&p("linux/arm64")), None);
        assert_eq!(p("linux/arm64/v8.2").rank(&p("linux/arm64/v8.1")), Some(1));
    }

    #[test]
    fn others_match_exactly() {
        assert_eq!(p("linux/s390x").rank(&p("linux/s390x")), Some(0));
        assert_eq!(p("linux/ppc64le").rank(&p("linux/ppc64")), None);
        assert_eq!(p("linux/riscv64").rank(&p("linux/riscv64/rva22")), None);
    }
}
