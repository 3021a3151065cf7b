//! Parsing and validation of the user's container flags, in Docker's syntax: memory
//! sizes, `--cpus`, restart policies, signals, `-v` mounts, environment and resource
//! limits. Everything here is pure (except [`validate_mounts`], which stats bind
//! sources) and every error is an [`EngineError::InvalidArgument`] naming the bad input.

use std::collections::BTreeSet;
use std::str::FromStr;

use nix::sys::signal::Signal;

use super::config::{MountKind, MountSpec, Resources, RestartPolicy};
use crate::EngineError;

/// The smallest memory limit accepted (Docker's: below it a container cannot start).
pub const MIN_MEMORY: i64 = 6 << 20;

/// The CFS period `--cpus` uses, in microseconds (Docker's).
pub const CPU_PERIOD: u64 = 100_000;

/// The most CPUs `--cpus` accepts.
const MAX_CPUS: u128 = 1024;

/// The signal `RTMIN` names, as Docker and glibc number it (the kernel's 32 and 33 are
/// kept by the C library for itself).
const SIGRTMIN: i32 = 34;

/// The highest signal number on Linux.
const SIGRTMAX: i32 = 64;

fn invalid(msg: String) -> EngineError {
    EngineError::InvalidArgument(msg)
}

/// A non-negative decimal number split into its integer digits and fraction digits
/// (`"1.5"` → `("1", "5")`); `None` when it is not one.
fn decimal(raw: &str) -> Option<(&str, &str)> {
    let (int, frac) = match raw.split_once('.') {
        Some((i, f)) => (i, f),
        None => (raw, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (raw.contains('.') && frac.is_empty()) {
        return None;
    }
    Some((int, frac))
}

/// `int.frac × scale`, truncated towards zero, without floating point; `None` on
/// overflow of `u128` (the callers bound the result further). Fraction digits past the
/// 18th are ignored: at scales up to 10⁹ they cannot change the result.
fn scaled(int: &str, frac: &str, scale: u128) -> Option<u128> {
    let whole: u128 = int.parse().ok()?;
    let mut value = whole.checked_mul(scale)?;
    let mut denom: u128 = 1;
    let mut num: u128 = 0;
    for b in frac.bytes().take(18) {
        denom = denom.checked_mul(10)?;
        num = num * 10 + u128::from(b - b'0');
    }
    value = value.checked_add(num.checked_mul(scale)? / denom)?;
    Some(value)
}

/// Parses a memory size in Docker's syntax: a number (fractions allowed) with an
/// optional binary unit `b`, `k`, `m` or `g` (case-insensitive, `k` = 1024), optionally
/// followed by `b` (`512mb`). Refuses zero, negative, malformed and overflowing values
/// and anything below [`MIN_MEMORY`] (6 MiB).
pub fn parse_memory(raw: &str) -> Result<i64, EngineError> {
    let bad = || {
        invalid(format!(
            "invalid memory {raw:?}: use a number with an optional unit b, k, m or g"
        ))
    };
    let lower = raw.trim().to_ascii_lowercase();
    let (number, scale): (&str, u128) = if let Some(n) = lower.strip_suffix("kb") {
        (n, 1 << 10)
    } else if let Some(n) = lower.strip_suffix("mb") {
        (n, 1 << 20)
    } else if let Some(n) = lower.strip_suffix("gb") {
        (n, 1 << 30)
    } else if let Some(n) = lower.strip_suffix('k') {
        (n, 1 << 10)
    } else if let Some(n) = lower.strip_suffix('m') {
        (n, 1 << 20)
    } else if let Some(n) = lower.strip_suffix('g') {
        (n, 1 << 30)
    } else if let Some(n) = lower.strip_suffix('b') {
        (n, 1)
    } else {
        (lower.as_str(), 1)
    };
    let (int, frac) = decimal(number.trim_end()).ok_or_else(bad)?;
    let bytes = scaled(int, frac, scale)
        .and_then(|b| i64::try_from(b).ok())
        .ok_or_else(|| invalid(format!("invalid memory {raw:?}: the value is too large")))?;
    if bytes == 0 {
        return Err(invalid(format!(
            "invalid memory {raw:?}: the limit must be greater than zero"
        )));
    }
    if bytes < MIN_MEMORY {
        return Err(invalid(format!(
            "memory limit {raw:?} is too small: the minimum is 6m"
        )));
    }
    Ok(bytes)
}

/// Parses `--cpus` (e.g. `1.5`) into a CFS `(quota, period)` in microseconds, with the
/// period [`CPU_PERIOD`]: `1.5` → `(150000, 100000)`. Up to nine decimals are kept, as
/// Docker's nano-CPUs; the value must lie in `0.01..=1024`.
pub fn parse_cpus(raw: &str) -> Result<(i64, u64), EngineError> {
    let (int, frac) = decimal(raw.trim()).ok_or_else(|| {
        invalid(format!(
            "invalid cpus {raw:?}: use a positive number such as 0.5 or 2"
        ))
    })?;
    if frac.len() > 9 {
        return Err(invalid(format!(
            "invalid cpus {raw:?}: at most nine decimals are allowed"
        )));
    }
    let too_large = || {
        invalid(format!(
            "invalid cpus {raw:?}: at most {MAX_CPUS} are allowed"
        ))
    };
    let nanos = scaled(int, frac, 1_000_000_000).ok_or_else(too_large)?;
    if nanos == 0 {
        return Err(invalid(format!(
            "invalid cpus {raw:?}: the value must be greater than zero"
        )));
    }
    if nanos > MAX_CPUS * 1_000_000_000 {
        return Err(too_large());
    }
    let quota = nanos * u128::from(CPU_PERIOD) / 1_000_000_000;
    // The kernel refuses a quota below 1 ms.
    if quota < 1000 {
        return Err(invalid(format!(
            "invalid cpus {raw:?}: the minimum is 0.01"
        )));
    }
    let quota = i64::try_from(quota).map_err(|_| too_large())?;
    Ok((quota, CPU_PERIOD))
}

/// Parses a restart policy: `no`, `always`, `on-failure` or `on-failure:N` (`N` ≥ 0;
/// `0`, like no count, means no limit, as in Docker). `unless-stopped` is refused.
pub fn parse_restart(raw: &str) -> Result<RestartPolicy, EngineError> {
    let valid = "use no, always, on-failure or on-failure:N";
    match raw {
        "no" => return Ok(RestartPolicy::No),
        "always" => return Ok(RestartPolicy::Always),
        "on-failure" => return Ok(RestartPolicy::OnFailure { max: None }),
        "unless-stopped" => {
            return Err(invalid(format!(
                "restart policy {raw:?} is not supported: use always (a container stopped \
                 by a user is never restarted)"
            )))
        }
        _ => {}
    }
    if let Some(count) = raw.strip_prefix("on-failure:") {
        if !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()) {
            let max: u32 = count.parse().map_err(|_| {
                invalid(format!(
                    "invalid restart policy {raw:?}: the retry count is too large"
                ))
            })?;
            return Ok(RestartPolicy::OnFailure {
                max: (max > 0).then_some(max),
            });
        }
        return Err(invalid(format!(
            "invalid restart policy {raw:?}: the retry count must be a non-negative integer"
        )));
    }
    Err(invalid(format!("invalid restart policy {raw:?}: {valid}")))
}

/// Parses a signal by name (`TERM`, `SIGTERM`, `sigkill`, `RTMIN+3`, `SIGRTMAX-1`) or
/// number (`1..=64`, real-time signals included).
pub fn parse_signal(raw: &str) -> Result<i32, EngineError> {
    let bad = || {
        invalid(format!(
            "invalid signal {raw:?}: use a name such as TERM or SIGKILL, or a number from 1 to 64"
        ))
    };
    let s = raw.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<i32>() {
            Ok(n) if (1..=SIGRTMAX).contains(&n) => Ok(n),
            _ => Err(bad()),
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(n) = realtime(name) {
        return n.ok_or_else(bad);
    }
    let canonical = match name {
        "IOT" => "ABRT",
        "POLL" => "IO",
        "CLD" => "CHLD",
        other => other,
    };
    // Only names: a number written as `SIG15` is not one.
    if !canonical.starts_with(|c: char| c.is_ascii_uppercase())
        || !canonical.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(bad());
    }
    Signal::from_str(&format!("SIG{canonical}"))
        .map(|sig| sig as i32)
        .map_err(|_| bad())
}

/// `RTMIN`, `RTMIN+n`, `RTMAX`, `RTMAX-n`: `None` when `name` is none of these,
/// `Some(None)` when it is one but out of range.
fn realtime(name: &str) -> Option<Option<i32>> {
    let offset = |s: &str| -> Option<i32> {
        if s.is_empty() {
            Some(0)
        } else if s.bytes().all(|b| b.is_ascii_digit()) && s.len() <= 2 {
            s.parse().ok()
        } else {
            None
        }
    };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        let rest = if rest.is_empty() {
            Some("")
        } else {
            rest.strip_prefix('+')
        };
        rest.and_then(offset).map(|o| SIGRTMIN + o)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        let rest = if rest.is_empty() {
            Some("")
        } else {
            rest.strip_prefix('-')
        };
        rest.and_then(offset).map(|o| SIGRTMAX - o)
    } else {
        return None;
    };
    Some(n.filter(|n| (SIGRTMIN..=SIGRTMAX).contains(n)))
}

/// The normalised form of an absolute path inside a container: empty and `.`
/// components dropped, no trailing slash (except for `/` itself). A relative path, a
/// `..` component or a NUL byte is refused; `what` names the path in the message
/// (`mount destination`).
pub fn normalise_container_path(what: &str, raw: &str) -> Result<String, EngineError> {
    if !raw.starts_with('/') {
        return Err(invalid(format!("{what} {raw:?} must be an absolute path")));
    }
    if raw.contains('\0') {
        return Err(invalid(format!("{what} {raw:?} contains a NUL byte")));
    }
    let mut out = String::with_capacity(raw.len());
    for comp in raw.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                return Err(invalid(format!(
                    "{what} {raw:?} must not contain '..' components"
                )))
            }
            c => {
                out.push('/');
                out.push_str(c);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Parses a `-v SRC:DST[:ro|rw]` flag into a bind [`MountSpec`]. `SRC` and `DST` must
/// be absolute; `DST` is normalised and may not be `/`. Whether `SRC` exists is not
/// checked here (see [`validate_mounts`]).
pub fn parse_mount_flag(raw: &str) -> Result<MountSpec, EngineError> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (source, destination, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, None),
        [s, d, m] => (*s, *d, Some(*m)),
        _ => {
            return Err(invalid(format!(
                "invalid mount {raw:?}: use SOURCE:DESTINATION[:ro|rw]"
            )))
        }
    };
    if source.is_empty() || destination.is_empty() {
        return Err(invalid(format!(
            "invalid mount {raw:?}: use SOURCE:DESTINATION[:ro|rw]"
        )));
    }
    if !source.starts_with('/') {
        return Err(invalid(format!(
            "invalid mount {raw:?}: the source {source:?} must be an absolute host path \
             (named volumes are not supported)"
        )));
    }
    if source.contains('\0') {
        return Err(invalid(format!(
            "invalid mount {raw:?}: the source contains a NUL byte"
        )));
    }
    let destination = normalise_container_path("mount destination", destination)?;
    if destination == "/" {
        return Err(invalid(format!(
            "invalid mount {raw:?}: the destination must not be /"
        )));
    }
    let mut readonly = false;
    if let Some(mode) = mode {
        for opt in mode.split(',') {
            match opt {
                "ro" => readonly = true,
                "rw" => readonly = false,
                other => {
                    return Err(invalid(format!(
                        "invalid mount {raw:?}: unknown option {other:?} (use ro or rw)"
                    )))
                }
            }
        }
    }
    Ok(MountSpec {
        kind: MountKind::Bind,
        source: source.to_string(),
        destination,
        readonly,
        options: Vec::new(),
    })
}

/// Options a bind mount may carry besides its read-only flag.
const BIND_OPTIONS: &[&str] = &["nosuid", "nodev", "noexec"];

/// Flag options a tmpfs mount may carry.
const TMPFS_FLAGS: &[&str] = &[
    "noexec", "nosuid", "nodev", "exec", "suid", "dev", "ro", "rw",
];

/// Checks one tmpfs option (`size=64m`, `mode=1777`, `noexec`, …).
fn check_tmpfs_option(destination: &str, opt: &str) -> Result<(), EngineError> {
    let bad = |why: &str| invalid(format!("tmpfs mount {destination:?}: option {opt:?} {why}"));
    let Some((key, value)) = opt.split_once('=') else {
        return if TMPFS_FLAGS.contains(&opt) {
            Ok(())
        } else {
            Err(bad(
                "is not allowed (use size=, mode=, uid=, gid=, nr_inodes=, noexec, nosuid, \
                 nodev, exec, suid, dev, ro or rw)",
            ))
        };
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match key {
        "size" | "nr_inodes" => {
            let number = value
                .strip_suffix(['k', 'K', 'm', 'M', 'g', 'G', '%'])
                .unwrap_or(value);
            if digits(number) {
                Ok(())
            } else {
                Err(bad("needs a number with an optional unit k, m, g or %"))
            }
        }
        "mode" => {
            if !value.is_empty()
                && value.len() <= 4
                && value.bytes().all(|b| (b'0'..=b'7').contains(&b))
            {
                Ok(())
            } else {
                Err(bad("needs an octal mode such as 1777"))
            }
        }
        "uid" | "gid" => {
            if digits(value) && value.parse::<u32>().is_ok() {
                Ok(())
            } else {
                Err(bad("needs a numeric id"))
            }
        }
        _ => Err(bad(
            "is not allowed (use size=, mode=, uid=, gid=, nr_inodes=, noexec, nosuid, nodev, \
             exec, suid, dev, ro or rw)",
        )),
    }
}

/// Checks a container's mounts as a whole: every destination is absolute, normalised,
/// not `/` and not in `/proc`, and appears once; a bind's source is an absolute host
/// path that exists and its options are among `nosuid`, `nodev`, `noexec`; a tmpfs's
/// options are from the allowed set (`size=`, `mode=`, `uid=`, `gid=`, `nr_inodes=`,
/// `noexec`, `nosuid`, `nodev`, `exec`, `suid`, `dev`, `ro`, `rw`).
pub fn validate_mounts(mounts: &[MountSpec]) -> Result<(), EngineError> {
    let mut seen = BTreeSet::new();
    for m in mounts {
        let dest = &m.destination;
        let normal = normalise_container_path("mount destination", dest)?;
        if &normal != dest {
            return Err(invalid(format!(
                "mount destination {dest:?} is not normalised (write {normal:?})"
            )));
        }
        if dest == "/" {
            return Err(invalid("mount destination must not be /".into()));
        }
        if dest == "/proc" || dest.starts_with("/proc/") {
            return Err(invalid(format!(
                "mount destination {dest:?} is not allowed: /proc belongs to the runtime"
            )));
        }
        if !seen.insert(dest.as_str()) {
            return Err(invalid(format!(
                "mount destination {dest:?} is used more than once"
            )));
        }
        match m.kind {
            MountKind::Bind => {
                let src = &m.source;
                if !src.starts_with('/') || src.contains('\0') {
                    return Err(invalid(format!(
                        "bind mount source {src:?} must be an absolute host path"
                    )));
                }
                match std::fs::metadata(src) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(invalid(format!("bind mount source {src:?} does not exist")))
                    }
                    Err(e) => {
                        return Err(invalid(format!(
                            "bind mount source {src:?} cannot be used: {e}"
                        )))
                    }
                }
                if let Some(opt) = m
                    .options
                    .iter()
                    .find(|o| !BIND_OPTIONS.contains(&o.as_str()))
                {
                    return Err(invalid(format!(
                        "bind mount {dest:?}: option {opt:?} is not allowed (use nosuid, nodev \
                         or noexec; read-only is the mount's own flag)"
                    )));
                }
            }
            MountKind::Tmpfs => {
                if !m.source.is_empty() && m.source != "tmpfs" {
                    return Err(invalid(format!(
                        "tmpfs mount {dest:?} takes no source (got {:?})",
                        m.source
                    )));
                }
                for opt in &m.options {
                    check_tmpfs_option(dest, opt)?;
                }
            }
        }
    }
    Ok(())
}

/// Checks an environment: every entry is `KEY=VALUE` with a non-empty key, and none
/// holds a NUL byte.
pub fn validate_env(env: &[String]) -> Result<(), EngineError> {
    for entry in env {
        if entry.contains('\0') {
            return Err(invalid(format!(
                "environment entry {entry:?} contains a NUL byte"
            )));
        }
        match entry.split_once('=') {
            Some((key, _)) if !key.is_empty() => {}
            Some(_) => {
                return Err(invalid(format!(
                    "environment entry {entry:?} has an empty name"
                )))
            }
            None => {
                return Err(invalid(format!(
                    "environment entry {entry:?} must be KEY=VALUE"
                )))
            }
        }
    }
    Ok(())
}

/// Checks resource limits: memory at least 6 MiB, CPU shares in `2..=262144`, a CPU
/// quota of at least 1000 µs, a CPU period in `1000..=1000000` µs and a pids limit
/// above zero (or `-1`, no limit).
pub fn validate_resources(r: &Resources) -> Result<(), EngineError> {
    if let Some(m) = r.memory {
        if m < MIN_MEMORY {
            return Err(invalid(format!(
                "memory limit {m} bytes is too small: the minimum is 6m ({MIN_MEMORY} bytes)"
            )));
        }
    }
    if let Some(s) = r.cpu_shares {
        if !(2..=262_144).contains(&s) {
            return Err(invalid(format!(
                "cpu shares {s} are out of range: use 2 to 262144"
            )));
        }
    }
    if let Some(q) = r.cpu_quota {
        if q < 1000 {
            return Err(invalid(format!(
                "cpu quota {q} is too small: the minimum is 1000 microseconds"
            )));
        }
    }
    if let Some(p) = r.cpu_period {
        if !(1000..=1_000_000).contains(&p) {
            return Err(invalid(format!(
                "cpu period {p} is out of range: use 1000 to 1000000 microseconds"
            )));
        }
    }
    if let Some(p) = r.pids_limit {
        if p <= 0 && p != -1 {
            return Err(invalid(format!(
                "pids limit {p} is invalid: use a positive number, or -1 for no limit"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<impl std::fmt::Debug, EngineError>) -> String {
        match r {
            Err(EngineError::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn memory_units() {
        for (raw, want) in [
            ("6291456", 6 << 20),
            ("7000000b", 7_000_000),
            ("8192k", 8 << 20),
            ("8192K", 8 << 20),
            ("512m", 512 << 20),
            ("512mb", 512 << 20),
            ("512MB", 512 << 20),
            ("1g", 1 << 30),
            ("1G", 1 << 30),
            ("1gb", 1 << 30),
            ("1.5g", 3 << 29),
            ("6.5m", 13 << 19),
            ("8589934592", 8 << 30),
            ("1.00000000000000000000000000000000009g", 1 << 30),
        ] {
            assert_eq!(parse_memory(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn memory_refusals_name_the_input() {
        for raw in [
            "", "12x", "-1g", "1.g", ".5g", "g", "1 g x", "1e9", "0x10", "1,5g",
        ] {
            let m = msg(parse_memory(raw));
            assert!(m.contains(&format!("{raw:?}")), "{m}");
        }
        assert_eq!(
            msg(parse_memory("12x")),
            "invalid memory \"12x\": use a number with an optional unit b, k, m or g"
        );
        assert!(msg(parse_memory("0")).contains("greater than zero"));
        assert!(msg(parse_memory("0m")).contains("greater than zero"));
        assert!(msg(parse_memory("4m")).contains("minimum is 6m"));
        assert!(msg(parse_memory("6291455")).contains("minimum is 6m"));
        assert!(msg(parse_memory("99999999999999999999g")).contains("too large"));
        assert!(msg(parse_memory("9223372036854775808")).contains("too large"));
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1.5").unwrap(), (150_000, 100_000));
        assert_eq!(parse_cpus("1").unwrap(), (100_000, 100_000));
        assert_eq!(parse_cpus("0.01").unwrap(), (1_000, 100_000));
        assert_eq!(parse_cpus("0.123456789").unwrap(), (12_345, 100_000));
        assert_eq!(parse_cpus("1024").unwrap(), (102_400_000, 100_000));
        for raw in [
            "", "0", "0.0", "-1", "NaN", "nan", "inf", "abc", "1.", "1.2.3", "1e3",
        ] {
            let m = msg(parse_cpus(raw));
            assert!(m.contains(&format!("{raw:?}")), "{m}");
        }
        assert!(msg(parse_cpus("1024.5")).contains("at most 1024"));
        assert!(msg(parse_cpus("99999999999999999999999999999999999")).contains("at most"));
        assert!(msg(parse_cpus("0.001")).contains("minimum is 0.01"));
        assert!(msg(parse_cpus("0.1234567891")).contains("nine decimals"));
    }

    #[test]
    fn restart() {
        assert_eq!(parse_restart("no").unwrap(), RestartPolicy::No);
        assert_eq!(parse_restart("always").unwrap(), RestartPolicy::Always);
        assert_eq!(
            parse_restart("on-failure").unwrap(),
            RestartPolicy::OnFailure { max: None }
        );
        assert_eq!(
            parse_restart("on-failure:0").unwrap(),
            RestartPolicy::OnFailure { max: None }
        );
        assert_eq!(
            parse_restart("on-failure:5").unwrap(),
            RestartPolicy::OnFailure { max: Some(5) }
        );
        let m = msg(parse_restart("unless-stopped"));
        assert!(m.contains("not supported") && m.contains("always"), "{m}");
        for raw in [
            "",
            "yes",
            "on-failure:",
            "on-failure:-1",
            "on-failure:x",
            "Always",
        ] {
            let m = msg(parse_restart(raw));
            assert!(m.contains(&format!("{raw:?}")), "{m}");
        }
        assert!(msg(parse_restart("sometimes")).contains("on-failure:N"));
        assert!(msg(parse_restart("on-failure:99999999999")).contains("too large"));
        // Round trip with Display.
        for p in ["no", "always", "on-failure", "on-failure:3"] {
            assert_eq!(parse_restart(p).unwrap().to_string(), p);
        }
    }

    #[test]
    fn signals() {
        for (raw, want) in [
            ("TERM", 15),
            ("SIGTERM", 15),
            ("sigkill", 9),
            ("kill", 9),
            ("15", 15),
            ("9", 9),
            ("HUP", 1),
            ("SIGUSR1", 10),
            ("usr2", 12),
            ("SIGCHLD", 17),
            ("CLD", 17),
            ("IOT", 6),
            ("POLL", 29),
            ("WINCH", 28),
            ("PWR", 30),
            ("SYS", 31),
            ("STKFLT", 16),
            ("RTMIN", 34),
            ("SIGRTMIN+3", 37),
            ("RTMAX", 64),
            ("rtmax-2", 62),
            ("40", 40),
            ("64", 64),
            ("1", 1),
        ] {
            assert_eq!(parse_signal(raw).unwrap(), want, "{raw}");
        }
        for raw in [
            "",
            "0",
            "65",
            "-9",
            "FOO",
            "SIG",
            "SIG15",
            "RTMIN+31",
            "RTMAX-31",
            "RTMIN-1",
            "99999999999",
        ] {
            let m = msg(parse_signal(raw));
            assert!(m.contains(&format!("{raw:?}")), "{m}");
        }
    }

    #[test]
    fn mount_flags() {
        let m = parse_mount_flag("/host/data:/data").unwrap();
        assert_eq!(
            m,
            MountSpec {
                kind: MountKind::Bind,
                source: "/host/data".into(),
                destination: "/data".into(),
                readonly: false,
                options: vec![],
            }
        );
        assert!(parse_mount_flag("/a:/b:ro").unwrap().readonly);
        assert!(!parse_mount_flag("/a:/b:rw").unwrap().readonly);
        assert_eq!(parse_mount_flag("/a://b/./c/").unwrap().destination, "/b/c");
        for (raw, want) in [
            ("/a", "SOURCE:DESTINATION"),
            ("/a:/b:ro:x", "SOURCE:DESTINATION"),
            (":/b", "SOURCE:DESTINATION"),
            ("/a:", "SOURCE:DESTINATION"),
            ("vol:/data", "named volumes"),
            ("./rel:/data", "absolute host path"),
            ("/a:rel", "absolute"),
            ("/a:/", "must not be /"),
            ("/a://", "must not be /"),
            ("/a:/b/../c", "'..'"),
            ("/a:/b:z", "unknown option \"z\""),
            ("/a:/b:ro,Z", "unknown option \"Z\""),
        ] {
            let m = msg(parse_mount_flag(raw));
            assert!(m.contains(want), "{raw}: {m}");
        }
        assert!(msg(parse_mount_flag("/a:rel")).contains("\"rel\""));
    }

    fn bind(src: &str, dst: &str) -> MountSpec {
        MountSpec {
            kind: MountKind::Bind,
            source: src.into(),
            destination: dst.into(),
            readonly: false,
            options: vec![],
        }
    }

    fn tmpfs(dst: &str, options: &[&str]) -> MountSpec {
        MountSpec {
            kind: MountKind::Tmpfs,
            source: String::new(),
            destination: dst.into(),
            readonly: false,
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn mounts_validated() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().to_str().unwrap();
        validate_mounts(&[
            bind(src, "/data"),
            tmpfs(
                "/run",
                &[
                    "size=64m",
                    "mode=1777",
                    "uid=1",
                    "gid=2",
                    "nr_inodes=1k",
                    "exec",
                    "nosuid",
                ],
            ),
            MountSpec {
                options: vec!["nosuid".into(), "nodev".into()],
                readonly: true,
                ..bind(src, "/ro")
            },
        ])
        .unwrap();
        validate_mounts(&[]).unwrap();

        let cases: Vec<(Vec<MountSpec>, &str)> = vec![
            (
                vec![bind("/nope/berth-missing", "/x")],
                "bind mount source \"/nope/berth-missing\" does not exist",
            ),
            (vec![bind("rel", "/x")], "\"rel\" must be an absolute"),
            (vec![bind(src, "x")], "\"x\" must be an absolute"),
            (vec![bind(src, "/x/")], "not normalised"),
            (vec![bind(src, "/x/./y")], "not normalised"),
            (vec![bind(src, "/x/../y")], "'..'"),
            (vec![bind(src, "/")], "must not be /"),
            (vec![bind(src, "/proc/sys")], "/proc"),
            (
                vec![bind(src, "/x"), tmpfs("/x", &[])],
                "\"/x\" is used more than once",
            ),
            (
                vec![MountSpec {
                    options: vec!["rbind".into()],
                    ..bind(src, "/x")
                }],
                "option \"rbind\" is not allowed",
            ),
            (vec![tmpfs("/t", &["size=lots"])], "option \"size=lots\""),
            (vec![tmpfs("/t", &["mode=999"])], "option \"mode=999\""),
            (vec![tmpfs("/t", &["uid=x"])], "option \"uid=x\""),
            (
                vec![tmpfs("/t", &["bind"])],
                "option \"bind\" is not allowed",
            ),
            (vec![tmpfs("/t", &["context=x"])], "option \"context=x\""),
            (
                vec![MountSpec {
                    source: "/etc".into(),
                    ..tmpfs("/t", &[])
                }],
                "takes no source",
            ),
        ];
        for (mounts, want) in cases {
            let m = msg(validate_mounts(&mounts));
            assert!(m.contains(want), "{mounts:?}: {m}");
        }
    }

    #[test]
    fn env() {
        validate_env(&["A=1".into(), "B=".into(), "C==x".into()]).unwrap();
        assert!(msg(validate_env(&["A".into()])).contains("\"A\" must be KEY=VALUE"));
        assert!(msg(validate_env(&["=1".into()])).contains("\"=1\" has an empty name"));
        assert!(msg(validate_env(&["A=\0".into()])).contains("NUL"));
    }

    #[test]
    fn resources() {
        validate_resources(&Resources::default()).unwrap();
        validate_resources(&Resources {
            memory: Some(MIN_MEMORY),
            cpu_shares: Some(2),
            cpu_quota: Some(1000),
            cpu_period: Some(100_000),
            pids_limit: Some(-1),
        })
        .unwrap();
        validate_resources(&Resources {
            pids_limit: Some(1),
            cpu_shares: Some(262_144),
            ..Resources::default()
        })
        .unwrap();
        for (r, want) in [
            (
                Resources {
                    memory: Some(1024),
                    ..Resources::default()
                },
                "memory limit 1024 bytes",
            ),
            (
                Resources {
                    cpu_shares: Some(1),
                    ..Resources::default()
                },
                "cpu shares 1",
            ),
            (
                Resources {
                    cpu_shares: Some(262_145),
                    ..Resources::default()
                },
                "cpu shares 262145",
            ),
            (
                Resources {
                    cpu_quota: Some(10),
                    ..Resources::default()
                },
                "cpu quota 10",
            ),
            (
                Resources {
                    cpu_period: Some(10),
                    ..Resources::default()
                },
                "cpu period 10",
            ),
            (
                Resources {
                    pids_limit: Some(0),
                    ..Resources::default()
                },
                "pids limit 0",
            ),
            (
                Resources {
                    pids_limit: Some(-2),
                    ..Resources::default()
                },
                "pids limit -2",
            ),
        ] {
            let m = msg(validate_resources(&r));
            assert!(m.contains(want), "{m}");
        }
    }
}
