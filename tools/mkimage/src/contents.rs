//! What the test images hold: the busybox layer, the three layers of the `layers`
//! image, and the filesystem that stacking them must give ([`expected_layers_view`]).

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::tarball::Entry;

/// Applets linked to `busybox` in `bin/` (all present in Debian's busybox-static 1.35).
/// A fixed list, not `busybox --list`, so the layer depends only on the binary's bytes.
pub const APPLETS: &[&str] = &[
    "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df", "dirname", "du",
    "echo", "env", "false", "find", "free", "grep", "head", "hostname", "httpd", "id", "ifconfig",
    "ip", "kill", "ln", "ls", "mkdir", "mount", "mv", "nc", "netstat", "nproc", "nslookup", "ping",
    "printf", "ps", "pwd", "readlink", "realpath", "rm", "route", "sed", "seq", "sh", "sleep",
    "sort", "stat", "sync", "tail", "tar", "tee", "test", "timeout", "top", "touch", "tr", "true",
    "umount", "uname", "uniq", "usleep", "vi", "wc", "wget", "whoami", "xargs", "yes",
];

/// `etc/passwd` of the busybox image.
pub const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
/// `etc/group` of the busybox image.
pub const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// `PATH` of every image's config.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The busybox layer: `bin/busybox` (the host binary's bytes), [`APPLETS`] as
/// symlinks `bin/<applet>` → `busybox`, `usr/bin/env` → `../../bin/busybox`,
/// `etc/passwd` (root, nobody), `etc/group` (root, nogroup), empty `dev`, `proc`,
/// `sys`, `root` (0700) and `tmp` (1777). No `etc/hosts` or `etc/resolv.conf`: the
/// runtime provides those.
pub fn busybox_layer(busybox: &Path) -> Result<Vec<Entry>> {
    let bytes = std::fs::read(busybox)
        .with_context(|| format!("reading busybox from {}", busybox.display()))?;
    if bytes.is_empty() {
        bail!("{} is empty", busybox.display());
    }
    let mut e = vec![
        Entry::dir("bin", 0o755),
        Entry::file("bin/busybox", 0o755, bytes),
        Entry::dir("dev", 0o755),
        Entry::dir("etc", 0o755),
        Entry::file("etc/group", 0o644, GROUP),
        Entry::file("etc/passwd", 0o644, PASSWD),
        Entry::dir("proc", 0o555),
        Entry::dir("root", 0o700),
        Entry::dir("sys", 0o555),
        Entry::dir("tmp", 0o1777),
        Entry::dir("usr", 0o755),
        Entry::dir("usr/bin", 0o755),
        Entry::symlink("usr/bin/env", "../../bin/busybox"),
    ];
    for a in APPLETS {
        e.push(Entry::symlink(&format!("bin/{a}"), "busybox"));
    }
    Ok(e)
}

/// Layer 2 of the `layers` image (tar+gzip): files, a hard link, a relative and an
/// absolute symlink, and things the next layer deletes.
pub fn layer2() -> Vec<Entry> {
    vec![
        Entry::dir("data", 0o755),
        Entry::file("data/a", 0o644, "alpha\n"),
        Entry::file("data/b", 0o644, "bravo v1\n"),
        Entry::hardlink("data/hard", "data/a"),
        Entry::symlink("data/rel-link", "a"),
        Entry::symlink("data/abs-link", "/data/dir/keep"),
        Entry::dir("data/dir", 0o755),
        Entry::file("data/dir/keep", 0o644, "keep\n"),
        Entry::file("data/gone", 0o644, "deleted by layer 3\n"),
        Entry::dir("data/olddir", 0o755),
        Entry::file(
            "data/olddir/x",
            0o644,
            "deleted with its directory by layer 3\n",
        ),
        Entry::dir("data/opaque", 0o755),
        Entry::file("data/opaque/old1", 0o644, "hidden by the opaque marker\n"),
        Entry::file("data/opaque/old2", 0o644, "hidden by the opaque marker\n"),
    ]
}

/// Layer 3 of the `layers` image (tar+zstd): whiteouts of a file and a directory, an
/// opaque directory with one new file, a modified file.
pub fn layer3() -> Vec<Entry> {
    vec![
        Entry::dir("data", 0o755),
        Entry::file("data/.wh.gone", 0o644, ""),
        Entry::file("data/.wh.olddir", 0o644, ""),
        Entry::file("data/b", 0o644, "bravo v2\n"),
        Entry::dir("data/opaque", 0o755),
        Entry::file("data/opaque/.wh..wh..opq", 0o644, ""),
        Entry::file("data/opaque/new", 0o644, "new\n"),
    ]
}

/// The extended attribute layer 4 sets on `data/xattr`.
pub const XATTR: (&str, &[u8]) = ("user.berth", b"hello");

/// Layer 4 of the `layers` image (plain tar): a setuid file, a file with a user
/// xattr (PAX `SCHILY.xattr.user.berth`), a fifo.
pub fn layer4() -> Vec<Entry> {
    let mut xattr = Entry::file("data/xattr", 0o644, "has an xattr\n");
    if let crate::tarball::Node::File { xattrs, .. } = &mut xattr.node {
        xattrs.push((XATTR.0.to_string(), XATTR.1.to_vec()));
    }
    vec![
        Entry::dir("data", 0o755),
        Entry::file("data/setuid", 0o4755, "#!/bin/sh\necho setuid\n"),
        xattr,
        Entry::fifo("data/fifo", 0o644),
    ]
}

/// What one path of the unpacked `layers` image must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// A directory with these permission bits.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A regular file.
    File {
        /// Permission bits (`& 0o7777`).
        mode: u32,
        /// Exact content.
        content: &'static [u8],
        /// Another path that must be the same inode (a hard link).
        same_inode_as: Option<&'static str>,
        /// An extended attribute it must carry, where the filesystem keeps them.
        xattr: Option<(&'static str, &'static [u8])>,
    },
    /// A symlink with this exact target.
    Symlink {
        /// Target as stored.
        target: &'static str,
    },
    /// A fifo.
    Fifo {
        /// Permission bits.
        mode: u32,
    },
    /// Nothing at this path (no file, no whiteout marker).
    Absent,
}

/// The filesystem the `layers` image gives once its four layers are applied in order
/// (paths relative to the root; owner 0:0 throughout):
///
/// | path | must be |
/// |---|---|
/// | `bin/busybox`, `bin/sh` → `busybox` | from layer 1 |
/// | `data/a` | file 0644 `alpha\n` |
/// | `data/hard` | the same inode as `data/a` |
/// | `data/b` | file 0644 `bravo v2\n` (layer 3 replaced `bravo v1\n`) |
/// | `data/rel-link` | symlink → `a` |
/// | `data/abs-link` | symlink → `/data/dir/keep` (not resolved on the host) |
/// | `data/dir/keep` | file `keep\n` |
/// | `data/opaque` | directory holding only `new` (`new\n`) |
/// | `data/setuid` | file 04755 |
/// | `data/xattr` | file with `user.berth=hello` |
/// | `data/fifo` | fifo 0644 |
/// | `data/gone`, `data/olddir`, `data/opaque/old1`, `data/opaque/old2` | absent (whited out) |
/// | `data/.wh.gone`, `data/.wh.olddir`, `data/opaque/.wh..wh..opq` | absent (markers are consumed) |
pub fn expected_layers_view() -> Vec<(&'static str, Expected)> {
    let file = |mode, content: &'static [u8]| Expected::File {
        mode,
        content,
        same_inode_as: None,
        xattr: None,
    };
    vec![
        ("bin", Expected::Dir { mode: 0o755 }),
        ("bin/sh", Expected::Symlink { target: "busybox" }),
        ("etc/passwd", file(0o644, PASSWD.as_bytes())),
        ("tmp", Expected::Dir { mode: 0o1777 }),
        ("data", Expected::Dir { mode: 0o755 }),
        ("data/a", file(0o644, b"alpha\n")),
        (
            "data/hard",
            Expected::File {
                mode: 0o644,
                content: b"alpha\n",
                same_inode_as: Some("data/a"),
                xattr: None,
            },
        ),
        ("data/b", file(0o644, b"bravo v2\n")),
        ("data/rel-link", Expected::Symlink { target: "a" }),
        (
            "data/abs-link",
            Expected::Symlink {
                target: "/data/dir/keep",
            },
        ),
        ("data/dir", Expected::Dir { mode: 0o755 }),
        ("data/dir/keep", file(0o644, b"keep\n")),
        ("data/opaque", Expected::Dir { mode: 0o755 }),
        ("data/opaque/new", file(0o644, b"new\n")),
        ("data/setuid", file(0o4755, b"#!/bin/sh\necho setuid\n")),
        (
            "data/xattr",
            Expected::File {
                mode: 0o644,
                content: b"has an xattr\n",
                same_inode_as: None,
                xattr: Some(XATTR),
            },
        ),
        ("data/fifo", Expected::Fifo { mode: 0o644 }),
        ("data/gone", Expected::Absent),
        ("data/.wh.gone", Expected::Absent),
        ("data/olddir", Expected::Absent),
        ("data/.wh.olddir", Expected::Absent),
        ("data/opaque/old1", Expected::Absent),
        ("data/opaque/old2", Expected::Absent),
        ("data/opaque/.wh..wh..opq", Expected::Absent),
    ]
}

/// Paths that must be the only entries of a directory in the unpacked `layers`
/// image (an opaque directory keeps only what its layer put there).
pub const EXACT_DIRS: &[(&str, &[&str])] = &[("data/opaque", &["new"])];

/// Checks an unpacked `layers` image at `root` against [`expected_layers_view`] and
/// [`EXACT_DIRS`]; returns every mismatch in one error. Extended attributes are
/// checked only if `check_xattrs` (a filesystem may not keep `user.*` attributes).
pub fn check_layers_view(root: &Path, check_xattrs: bool) -> Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let mut problems = Vec::new();
    for (rel, want) in expected_layers_view() {
        let path = root.join(rel);
        let meta = std::fs::symlink_metadata(&path);
        let mode = |m: &std::fs::Metadata| m.permissions().mode() & 0o7777;
        match (&want, meta) {
            (Expected::Absent, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            (Expected::Absent, Ok(_)) => problems.push(format!("{rel}: must not exist")),
            (_, Err(e)) => problems.push(format!("{rel}: {e}")),
            (Expected::Dir { mode: m }, Ok(meta)) => {
                if !meta.is_dir() || mode(&meta) != *m {
                    problems.push(format!(
                        "{rel}: want directory {m:o}, got {:?} {:o}",
                        meta.file_type(),
                        mode(&meta)
                    ));
                }
            }
            (
                Expected::File {
                    mode: m,
                    content,
                    same_inode_as,
                    xattr,
                },
                Ok(meta),
            ) => {
                if !meta.is_file() || mode(&meta) != *m {
                    problems.push(format!(
                        "{rel}: want file {m:o}, got {:?} {:o}",
                        meta.file_type(),
                        mode(&meta)
                    ));
                    continue;
                }
                match std::fs::read(&path) {
                    Ok(got) if got == *content => {}
                    Ok(got) => problems.push(format!(
                        "{rel}: content {:?}, want {:?}",
                        String::from_utf8_lossy(&got),
                        String::from_utf8_lossy(content)
                    )),
                    Err(e) => problems.push(format!("{rel}: {e}")),
                }
                if let Some(other) = same_inode_as {
                    match std::fs::symlink_metadata(root.join(other)) {
                        Ok(o) if o.ino() == meta.ino() && o.dev() == meta.dev() => {}
                        Ok(_) => problems.push(format!("{rel}: not a hard link of {other}")),
                        Err(e) => problems.push(format!("{rel}: {other}: {e}")),
                    }
                }
                if let (true, Some((name, value))) = (check_xattrs, xattr) {
                    if let Err(p) = check_xattr(&path, name, value) {
                        problems.push(format!("{rel}: {p}"));
                    }
                }
            }
            (Expected::Symlink { target }, Ok(meta)) => match std::fs::read_link(&path) {
                Ok(t) if meta.file_type().is_symlink() && t == Path::new(target) => {}
                Ok(t) => problems.push(format!("{rel}: symlink to {t:?}, want {target:?}")),
                Err(e) => problems.push(format!("{rel}: not a symlink: {e}")),
            },
            (Expected::Fifo { mode: m }, Ok(meta)) => {
                if !meta.file_type().is_fifo() || mode(&meta) != *m {
                    problems.push(format!(
                        "{rel}: want fifo {m:o}, got {:?} {:o}",
                        meta.file_type(),
                        mode(&meta)
                    ));
                }
            }
        }
    }
    for (dir, names) in EXACT_DIRS {
        match std::fs::read_dir(root.join(dir)) {
            Ok(rd) => {
                let mut got: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                got.sort();
                if got != *names {
                    problems.push(format!("{dir}: holds {got:?}, want exactly {names:?}"));
                }
            }
            Err(e) => problems.push(format!("{dir}: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!(
            "unpacked layers image at {} differs from the expected view:\n  {}",
            root.display(),
            problems.join("\n  ")
        )
    }
}

/// Compares one extended attribute.
fn check_xattr(path: &Path, name: &str, value: &[u8]) -> std::result::Result<(), String> {
    match xattr::get(path, name) {
        Ok(Some(got)) if got == value => Ok(()),
        Ok(Some(got)) => Err(format!(
            "xattr {name} is {:?}, want {:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(value)
        )),
        Ok(None) => Err(format!("xattr {name} is missing")),
        Err(e) => Err(format!("xattr {name}: {e}")),
    }
}
