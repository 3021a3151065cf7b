//! The hostile corpus. Each case runs against a fresh root next to an `outside`
//! directory full of markers; whatever the outcome (refused, or contained inside the
//! root), everything outside the root must be exactly as before, with nothing added.

use tar::EntryType;

use super::*;
use crate::ErrorKind;

/// `base/root` (the snapshot) next to `base/outside` (host files).
struct Arena {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    outside: PathBuf,
}

impl Arena {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("marker"), b"host file").unwrap();
        std::fs::write(outside.join("sub/marker2"), b"another host file").unwrap();
        Arena {
            _tmp: tmp,
            base,
            root,
            outside,
        }
    }

    /// Everything under `base` but inside the root.
    fn host(&self) -> BTreeMap<PathBuf, String> {
        let mut t = tree(&self.base);
        t.retain(|p, _| !p.starts_with("root/"));
        // The root directory's own mtime changes as entries land in it.
        t.remove(Path::new("root"));
        t
    }

    /// The outside directory, absolute, without the leading '/'.
    fn outside_rel(&self) -> String {
        self.outside
            .to_str()
            .unwrap()
            .trim_start_matches('/')
            .to_string()
    }
}

enum Expect {
    /// Refused with InvalidArgument, the message containing this.
    Refused(&'static str),
    /// Applied, with this path (relative to the root) holding what the layer wrote.
    Contained(String),
}

fn check(name: &str, build: impl Fn(&Arena) -> (Vec<u8>, Expect)) {
    for mode in [WhiteoutMode::Native, WhiteoutMode::Overlay] {
        let arena = Arena::new();
        let before = arena.host();
        let (layer, expect) = build(&arena);
        let result = apply(&layer, &arena.root, mode);
        match (&expect, result) {
            (Expect::Refused(needle), Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{name} {mode:?}: {e}");
                assert!(e.to_string().contains(needle), "{name} {mode:?}: {e}");
            }
            (Expect::Contained(rel), Ok(_)) => {
                let p = arena.root.join(rel);
                assert!(
                    std::fs::symlink_metadata(&p).is_ok(),
                    "{name} {mode:?}: {} missing",
                    p.display()
                );
            }
            (Expect::Refused(_), Ok(a)) => panic!("{name} {mode:?}: applied: {a:?}"),
            (Expect::Contained(_), Err(e)) => panic!("{name} {mode:?}: refused: {e}"),
        }
        let after = arena.host();
        assert_eq!(before, after, "{name} {mode:?}: the host changed");
        assert_eq!(
            std::fs::read(arena.outside.join("marker")).unwrap(),
            b"host file"
        );
    }
}

#[test]
fn dotdot_paths_are_refused() {
    for name in [
        "../outside/evil",
        "a/../../outside/evil",
        "./../outside/marker",
        "../../../../../../../../tmp/evil",
    ] {
        check(name, |_| {
            let layer = Layer::new()
                .raw(EntryType::Regular, name, "", b"pwned")
                .finish();
            (layer, Expect::Refused(name))
        });
    }
    // Also for directories, symlinks and whiteouts.
    check("dotdot dir", |_| {
        (
            Layer::new()
                .raw(EntryType::Directory, "../outside/newdir/", "", b"")
                .finish(),
            Expect::Refused(".."),
        )
    });
    check("dotdot symlink", |_| {
        (
            Layer::new()
                .raw(EntryType::Symlink, "../outside/l", "/", b"")
                .finish(),
            Expect::Refused(".."),
        )
    });
    check("dotdot whiteout", |_| {
        (
            Layer::new()
                .raw(EntryType::Regular, "../outside/.wh.marker", "", b"")
                .finish(),
            Expect::Refused(".."),
        )
    });
}

#[test]
fn absolute_paths_stay_inside_the_root() {
    check("absolute path", |a| {
        let name = format!("{}/marker", a.outside.display());
        let layer = Layer::new()
            .raw(EntryType::Regular, &name, "", b"pwned")
            .finish();
        (
            layer,
            Expect::Contained(format!("{}/marker", a.outside_rel())),
        )
    });
    check("absolute /etc", |_| {
        let layer = Layer::new()
            .raw(
                EntryType::Regular,
                "/etc/berth-unpack-test-marker",
                "",
                b"x",
            )
            .finish();
        (
            layer,
            Expect::Contained("etc/berth-unpack-test-marker".into()),
        )
    });
    assert!(!Path::new("/etc/berth-unpack-test-marker").exists());
}

#[test]
fn symlink_to_root_then_write_through_it() {
    check("symlink to /", |a| {
        let through = format!("evil/{}/pwned", a.outside_rel());
        let layer = Layer::new()
            .symlink("evil", "/")
            .raw(EntryType::Regular, &through, "", b"pwned")
            .finish();
        (
            layer,
            Expect::Contained(format!("{}/pwned", a.outside_rel())),
        )
    });
    check("relative symlink climbing out", |a| {
        let layer = Layer::new()
            .symlink("up", "../../../../../../../..")
            .file(&format!("up/{}/pwned", a.outside_rel()), b"pwned")
            .finish();
        (
            layer,
            Expect::Contained(format!("{}/pwned", a.outside_rel())),
        )
    });
    check("symlink to an outside directory", |a| {
        let layer = Layer::new()
            .symlink("s", a.outside.to_str().unwrap())
            .file("s/marker", b"pwned")
            .dir("s/sub/", 0o700)
            .finish();
        (
            layer,
            Expect::Contained(format!("{}/marker", a.outside_rel())),
        )
    });
}

#[test]
fn parent_directory_replaced_by_a_symlink() {
    check("dir, then symlink over it, then a file through it", |a| {
        let layer = Layer::new()
            .dir("d/", 0o755)
            .file("d/before", b"ok")
            .symlink("d", a.outside.to_str().unwrap())
            .file("d/file", b"pwned")
            .file("d/marker", b"pwned")
            .finish();
        (
            layer,
            Expect::Contained(format!("{}/file", a.outside_rel())),
        )
    });
    check("relative symlink over a parent", |_| {
        let layer = Layer::new()
            .dir("d/", 0o755)
            .symlink("d", "../outside")
            .file("d/file", b"pwned")
            .finish();
        (layer, Expect::Contained("outside/file".into()))
    });
}

#[test]
fn hardlinks_to_host_files_are_refused() {
    check("hardlink to an absolute host path", |a| {
        let target = format!("{}/marker", a.outside.display());
        let layer = Layer::new()
            .raw(EntryType::Link, "link", &target, b"")
            .finish();
        (layer, Expect::Refused("does not exist inside the snapshot"))
    });
    check("hardlink with ..", |_| {
        let layer = Layer::new()
            .raw(EntryType::Link, "link", "../outside/marker", b"")
            .finish();
        (layer, Expect::Refused(".."))
    });
    check("hardlink through a symlink to the host", |a| {
        let layer = Layer::new()
            .symlink("s", a.outside.to_str().unwrap())
            .raw(EntryType::Link, "link", "s/marker", b"")
            .finish();
        (layer, Expect::Refused("does not exist inside the snapshot"))
    });
    check("hardlink through a symlink to /", |a| {
        let target = format!("r/{}/marker", a.outside_rel());
        let layer = Layer::new()
            .symlink("r", "/")
            .raw(EntryType::Link, "link", &target, b"")
            .finish();
        (layer, Expect::Refused("does not exist inside the snapshot"))
    });
    check("hardlink to /etc/passwd", |_| {
        let layer = Layer::new()
            .raw(EntryType::Link, "passwd", "/etc/passwd", b"")
            .finish();
        (layer, Expect::Refused("does not exist inside the snapshot"))
    });
}

#[test]
fn writing_over_a_symlink_replaces_the_link() {
    check("file over a symlink to a host file", |a| {
        let layer = Layer::new()
            .symlink("x", &format!("{}/marker", a.outside.display()))
            .file("x", b"pwned")
            .finish();
        (layer, Expect::Contained("x".into()))
    });
    check("device over a symlink to a host file", |a| {
        let layer = Layer::new()
            .symlink("x", &format!("{}/marker", a.outside.display()))
            .node("x", EntryType::Fifo, 0o600, 0, 0)
            .finish();
        (layer, Expect::Contained("x".into()))
    });
    check("directory over a symlink to a host directory", |a| {
        let layer = Layer::new()
            .symlink("x", a.outside.to_str().unwrap())
            .dir("x/", 0o777)
            .finish();
        (layer, Expect::Contained("x".into()))
    });
}

#[test]
fn whiteouts_through_symlinks_stay_inside() {
    check("whiteout through a symlink to the host", |a| {
        let layer = Layer::new()
            .symlink("s", a.outside.to_str().unwrap())
            .file("s/.wh.marker", b"")
            .file("s/.wh.sub", b"")
            .finish();
        (layer, Expect::Contained("s".into()))
    });
    check("opaque marker through a symlink to the host", |a| {
        let layer = Layer::new()
            .symlink("s", a.outside.to_str().unwrap())
            .file("s/.wh..wh..opq", b"")
            .finish();
        (layer, Expect::Contained("s".into()))
    });
    check("opaque marker through a symlink to /", |_| {
        let layer = Layer::new()
            .symlink("s", "/")
            .file("s/.wh..wh..opq", b"")
            .finish();
        (layer, Expect::Contained("s".into()))
    });
}

#[test]
fn native_whiteouts_through_symlinks_cannot_reach_the_host() {
    // A lower layer already holds the symlink; the next one whites out through it.
    let arena = Arena::new();
    let before = arena.host();
    let lower = Layer::new()
        .symlink("s", arena.outside.to_str().unwrap())
        .finish();
    apply(&lower, &arena.root, WhiteoutMode::Native).unwrap();
    let upper = Layer::new()
        .file("s/.wh.marker", b"")
        .file(&format!("{}/.wh.marker", arena.outside_rel()), b"")
        .file("s/sub/.wh..wh..opq", b"")
        .finish();
    apply(&upper, &arena.root, WhiteoutMode::Native).unwrap();
    assert_eq!(before, arena.host());
}

#[test]
fn hostile_ordering_and_names() {
    check("symlink then hardlink to it, then write", |a| {
        // A hardlink to a symlink links the symlink itself; writing to the hardlink
        // name replaces it, never following it.
        let layer = Layer::new()
            .symlink("s", &format!("{}/marker", a.outside.display()))
            .hardlink("h", "s")
            .file("h", b"pwned")
            .finish();
        (layer, Expect::Contained("h".into()))
    });
    check(
        "entry named like the root's parent via absolute dotdot",
        |_| {
            let layer = Layer::new()
                .raw(EntryType::Regular, "/../outside/marker", "", b"pwned")
                .finish();
            (layer, Expect::Refused(".."))
        },
    );
}
