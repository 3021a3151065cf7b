//! The snapshotter conformance suite: the same checks, with real mounts, against every
//! [`Snapshotter`]. Needs root (it mounts). Each check works in its own scratch
//! directory and unmounts what it mounted even when it fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Kind, SnapshotId, Snapshotter};
use crate::mount::{mount_all, unmount, Mount};

/// A mount that is undone when dropped.
pub struct Mounted {
    target: PathBuf,
}

impl Mounted {
    /// Mounts `mounts` on a new directory `target`.
    pub fn new(mounts: &[Mount], target: &Path) -> Mounted {
        std::fs::create_dir_all(target).unwrap();
        mount_all(mounts, target).unwrap_or_else(|e| panic!("mounting {mounts:?}: {e}"));
        Mounted {
            target: target.to_path_buf(),
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = unmount(&self.target);
    }
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel)).ok()
}

/// Builds a committed layer `id` over `parents` by running `f` on its mounted active
/// snapshot.
pub fn layer(
    s: &dyn Snapshotter,
    scratch: &Path,
    id: SnapshotId,
    parents: &[SnapshotId],
    f: impl FnOnce(&Path),
) {
    let mounts = s.prepare(id, parents).unwrap();
    {
        let m = Mounted::new(&mounts, &scratch.join(format!("mnt-{id}")));
        f(m.path());
    }
    s.commit(id).unwrap();
}

/// Every check, in order.
pub fn run_all(make: &dyn Fn(&Path) -> Box<dyn Snapshotter>) {
    type Check = fn(&dyn Snapshotter, &Path);
    let checks: &[(&str, Check)] = &[
        ("base layer", base_layer),
        ("child sees parent, changes stay in child", child_layer),
        ("deletes in a child hide parent files", deletes),
        ("view is read-only and sees the stack", view),
        ("metadata survives layering", metadata),
        ("remove and walk", remove_and_walk),
        ("usage counts own storage", usage),
        ("128-layer stack", deep_stack),
        ("errors", errors),
    ];
    for (name, check) in checks {
        let dir = tempfile::tempdir().unwrap();
        let s = make(&dir.path().join("root"));
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        eprintln!("{}: {name}", s.name());
        check(s.as_ref(), &scratch);
    }
}

fn base_layer(s: &dyn Snapshotter, scratch: &Path) {
    layer(s, scratch, 1, &[], |root| {
        write(root, "etc/hostname", "base");
        write(root, "bin/tool", "v1");
    });
    let mounts = s.mounts(1, Kind::Committed, &[]).unwrap();
    let m = Mounted::new(&mounts, &scratch.join("check"));
    assert_eq!(read(m.path(), "etc/hostname").as_deref(), Some("base"));
    assert!(
        std::fs::write(m.path().join("new"), "x").is_err(),
        "committed mounts are read-only"
    );
}

fn child_layer(s: &dyn Snapshotter, scratch: &Path) {
    layer(s, scratch, 1, &[], |root| write(root, "a", "1"));
    layer(s, scratch, 2, &[1], |root| {
        assert_eq!(read(root, "a").as_deref(), Some("1"));
        write(root, "a", "2");
        write(root, "b", "new");
    });
    // the parent is unchanged
    let m1 = Mounted::new(
        &s.mounts(1, Kind::Committed, &[]).unwrap(),
        &scratch.join("p"),
    );
    assert_eq!(read(m1.path(), "a").as_deref(), Some("1"));
    assert_eq!(read(m1.path(), "b"), None);
    drop(m1);
    let m = Mounted::new(&s.prepare(3, &[2, 1]).unwrap(), &scratch.join("c"));
    assert_eq!(read(m.path(), "a").as_deref(), Some("2"));
    assert_eq!(read(m.path(), "b").as_deref(), Some("new"));
}

fn deletes(s: &dyn Snapshotter, scratch: &Path) {
    layer(s, scratch, 1, &[], |root| {
        write(root, "keep", "k");
        write(root, "gone", "g");
        write(root, "dir/inner", "i");
    });
    layer(s, scratch, 2, &[1], |root| {
        std::fs::remove_file(root.join("gone")).unwrap();
        std::fs::remove_dir_all(root.join("dir")).unwrap();
    });
    let m = Mounted::new(&s.view(3, &[2, 1]).unwrap(), &scratch.join("v"));
    assert!(m.path().join("keep").exists());
    assert!(!m.path().join("gone").exists());
    assert!(!m.path().join("dir").exists());
}

fn view(s: &dyn Snapshotter, scratch: &Path) {
    layer(s, scratch, 1, &[], |root| write(root, "x", "1"));
    layer(s, scratch, 2, &[1], |root| write(root, "y", "2"));
    for (id, parents) in [(3u64, vec![1u64]), (4, vec![2, 1])] {
        let m = Mounted::new(
            &s.view(id, &parents).unwrap(),
            &scratch.join(format!("v{id}")),
        );
        assert_eq!(read(m.path(), "x").as_deref(), Some("1"));
        assert_eq!(read(m.path(), "y").is_some(), parents.len() == 2);
        let err = std::fs::write(m.path().join("z"), "no").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "views are read-only");
    }
}

fn metadata(s: &dyn Snapshotter, scratch: &Path) {
    use std::os::unix::fs::MetadataExt;
    layer(s, scratch, 1, &[], |root| {
        write(root, "suid", "s");
        std::fs::set_permissions(root.join("suid"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        write(root, "owned", "o");
        std::os::unix::fs::chown(root.join("owned"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::symlink("owned", root.join("link")).unwrap();
        std::fs::hard_link(root.join("owned"), root.join("hard")).unwrap();
        xattr::set(root.join("owned"), "user.berth", b"v").unwrap();
        nix::unistd::mkfifo(
            &root.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
    });
    let m = Mounted::new(&s.prepare(2, &[1]).unwrap(), &scratch.join("m"));
    let p = m.path();
    assert_eq!(
        std::fs::metadata(p.join("suid")).unwrap().mode() & 0o7777,
        0o4755
    );
    let owned = std::fs::metadata(p.join("owned")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (1234, 5678));
    assert_eq!(
        std::fs::read_link(p.join("link")).unwrap(),
        Path::new("owned")
    );
    assert_eq!(
        std::fs::metadata(p.join("hard")).unwrap().ino(),
        owned.ino(),
        "hard links stay linked"
    );
    assert_eq!(
        xattr::get(p.join("owned"), "user.berth")
            .unwrap()
            .as_deref(),
        Some(&b"v"[..])
    );
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &std::fs::symlink_metadata(p.join("fifo"))
            .unwrap()
            .file_type()
    ));
}

fn remove_and_walk(s: &dyn Snapshotter, scratch: &Path) {
    layer(s, scratch, 1, &[], |root| write(root, "a", "1"));
    s.prepare(2, &[1]).unwrap();
    s.view(3, &[1]).unwrap();
    assert_eq!(s.walk().unwrap(), vec![1, 2, 3]);
    s.remove(3).unwrap();
    s.remove(2).unwrap();
    assert_eq!(s.walk().unwrap(), vec![1]);
    s.remove(2).unwrap(); // removing what is gone is fine (finishing an interrupted removal)
    s.remove(1).unwrap();
    assert!(s.walk().unwrap().is_empty());
}

fn usage(s: &dyn Snapshotter, scratch: &Path) {
    layer(s, scratch, 1, &[], |root| {
        write(root, "big", &"x".repeat(1 << 20))
    });
    let u = s.usage(1).unwrap();
    assert!(u.size >= 1 << 20, "{u:?}");
    assert!(u.inodes >= 2, "{u:?}");
    layer(s, scratch, 2, &[1], |root| write(root, "small", "y"));
    let u2 = s.usage(2).unwrap();
    assert!(u2.inodes >= 2, "{u2:?}");
}

fn deep_stack(s: &dyn Snapshotter, scratch: &Path) {
    let mut parents: Vec<SnapshotId> = Vec::new();
    for id in 1..=128u64 {
        layer(s, scratch, id, &parents, |root| {
            write(root, &format!("layers/{id}"), &id.to_string());
            if id > 1 {
                // each layer also shadows the previous layer's "top" file
                std::fs::remove_file(root.join("top")).unwrap();
            }
            write(root, "top", &id.to_string());
        });
        parents.insert(0, id);
    }
    let m = Mounted::new(&s.view(129, &parents).unwrap(), &scratch.join("deep"));
    for id in 1..=128u64 {
        assert_eq!(
            read(m.path(), &format!("layers/{id}")),
            Some(id.to_string())
        );
    }
    assert_eq!(read(m.path(), "top").as_deref(), Some("128"));
    drop(m);
    let m = Mounted::new(&s.prepare(130, &parents).unwrap(), &scratch.join("deep-rw"));
    write(m.path(), "layers/new", "rw");
    assert_eq!(read(m.path(), "layers/1").as_deref(), Some("1"));
}

fn errors(s: &dyn Snapshotter, scratch: &Path) {
    layer(s, scratch, 1, &[], |_| {});
    assert!(s.prepare(1, &[]).is_err(), "an id is used once");
    assert!(s.prepare(2, &[99]).is_err(), "a missing parent is refused");
    assert!(s.view(3, &[]).is_err(), "a view needs a parent");
    assert!(s.commit(42).is_err(), "committing nothing fails");
    assert!(s.walk().unwrap().contains(&1));
}

#[cfg(test)]
mod tests {
    use super::run_all;
    use crate::snapshot::{Native, Overlay, Snapshotter};

    fn root() -> bool {
        nix::unistd::Uid::effective().is_root()
    }

    #[test]
    fn overlay_conforms() {
        if !root() || !crate::mount::overlay_supported() {
            eprintln!("skipped: needs root and overlayfs");
            return;
        }
        run_all(&|dir| Box::new(Overlay::new(dir).unwrap()) as Box<dyn Snapshotter>);
    }

    #[test]
    fn native_conforms() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        run_all(&|dir| Box::new(Native::new(dir).unwrap()) as Box<dyn Snapshotter>);
    }
}
