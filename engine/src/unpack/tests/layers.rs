//! What a layer puts on disk: every kind of entry, with its metadata.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use tar::EntryType;

use super::*;

#[test]
fn preserves_entries_and_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let layer = Layer::new()
        .dir_with("etc/", 0o750, 1000, 1001, 1_500_000_000)
        .file_with("etc/conf", b"hello", 0o640, 1000, 1001, 1_500_000_100)
        .file_with("bin/suid", b"#!/bin/sh\n", 0o4755, 0, 0, MTIME)
        .dir("tmp/", 0o1777)
        .dir("shared/", 0o2775)
        .symlink("etc/link", "conf")
        .symlink("abs", "/etc/conf")
        .hardlink("etc/hard", "etc/conf")
        .node("dev/null", EntryType::Char, 0o666, 1, 3)
        .node("dev/loop9", EntryType::Block, 0o660, 7, 9)
        .node("run/fifo", EntryType::Fifo, 0o620, 0, 0)
        .pax(&[
            ("SCHILY.xattr.user.note", b"some value"),
            ("SCHILY.xattr.trusted.berth", b"\x00\x01binary"),
            ("mtime", b"1700000000.123456789"),
        ])
        .file("xattrs", b"x")
        .finish();
    let applied = apply(&layer, root, WhiteoutMode::Native).unwrap();
    assert_eq!(applied.entries, 12);
    assert_eq!(applied.diff_id, sha256(&layer));
    assert_eq!(applied.uncompressed_size, layer.len() as u64);

    let etc = lstat(&root.join("etc"));
    assert!(etc.is_dir());
    assert_eq!(etc.mode() & 0o7777, 0o750);
    assert_eq!((etc.uid(), etc.gid()), (1000, 1001));
    // Set after its children were written into it.
    assert_eq!(etc.mtime(), 1_500_000_000);

    let conf = lstat(&root.join("etc/conf"));
    assert_eq!(std::fs::read(root.join("etc/conf")).unwrap(), b"hello");
    assert_eq!(conf.mode() & 0o7777, 0o640);
    assert_eq!((conf.uid(), conf.gid()), (1000, 1001));
    assert_eq!(conf.mtime(), 1_500_000_100);
    assert_eq!(conf.nlink(), 2);
    let hard = lstat(&root.join("etc/hard"));
    assert_eq!(hard.ino(), conf.ino());

    assert_eq!(lstat(&root.join("bin/suid")).mode() & 0o7777, 0o4755);
    assert_eq!(lstat(&root.join("tmp")).mode() & 0o7777, 0o1777);
    assert_eq!(lstat(&root.join("shared")).mode() & 0o7777, 0o2775);
    // Parents the layer did not list are created 0755.
    assert_eq!(lstat(&root.join("bin")).mode() & 0o7777, 0o755);

    assert_eq!(
        std::fs::read_link(root.join("etc/link")).unwrap(),
        Path::new("conf")
    );
    assert_eq!(
        std::fs::read_link(root.join("abs")).unwrap(),
        Path::new("/etc/conf")
    );
    assert_eq!(
        lstat(&root.join("abs")).mtime(),
        i64::try_from(MTIME).unwrap()
    );

    let null = lstat(&root.join("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    let lp = lstat(&root.join("dev/loop9"));
    assert!(lp.file_type().is_block_device());
    assert_eq!(lp.rdev(), nix::sys::stat::makedev(7, 9));
    let fifo = lstat(&root.join("run/fifo"));
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o620);

    let x = root.join("xattrs");
    assert_eq!(xattr::get(&x, "user.note").unwrap().unwrap(), b"some value");
    assert_eq!(
        xattr::get(&x, "trusted.berth").unwrap().unwrap(),
        b"\x00\x01binary"
    );
    let md = lstat(&x);
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_700_000_000, 123_456_789));
}

#[test]
fn xattrs_on_dirs_symlinks_and_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let layer = Layer::new()
        .pax(&[("SCHILY.xattr.trusted.d", b"dir")])
        .dir("d/", 0o755)
        .pax(&[("SCHILY.xattr.trusted.l", b"link")])
        .symlink("d/l", "/nowhere")
        .pax(&[("SCHILY.xattr.trusted.n", b"node")])
        .node("d/f", EntryType::Fifo, 0o600, 0, 0)
        // Overlay attributes from layer content are dropped, never applied.
        .pax(&[("SCHILY.xattr.trusted.overlay.redirect", b"/etc")])
        .dir("e/", 0o755)
        .finish();
    apply(&layer, root, WhiteoutMode::Overlay).unwrap();
    assert_eq!(
        xattr::get(root.join("d"), "trusted.d").unwrap().unwrap(),
        b"dir"
    );
    assert_eq!(
        xattr::get(root.join("d/l"), "trusted.l").unwrap().unwrap(),
        b"link"
    );
    assert_eq!(
        xattr::get(root.join("d/f"), "trusted.n").unwrap().unwrap(),
        b"node"
    );
    assert_eq!(
        xattr::get(root.join("e"), "trusted.overlay.redirect").unwrap(),
        None
    );
}

#[test]
fn long_names_and_link_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let deep = format!("{}/{}", "a".repeat(120), "b".repeat(150));
    let target = format!("/{}", "t".repeat(200));
    let layer = Layer::new()
        .file(&deep, b"deep")
        .symlink("s", &target)
        .hardlink("h", &deep)
        .finish();
    apply(&layer, root, WhiteoutMode::Native).unwrap();
    assert_eq!(std::fs::read(root.join(&deep)).unwrap(), b"deep");
    assert_eq!(
        std::fs::read_link(root.join("s")).unwrap(),
        Path::new(&target)
    );
    assert_eq!(std::fs::read(root.join("h")).unwrap(), b"deep");
}

#[test]
fn later_entries_replace_earlier_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let lower = Layer::new()
        .dir("p/", 0o755)
        .file("p/inner", b"1")
        .file("f", b"file")
        .dir("keep/", 0o700)
        .file("keep/old", b"old")
        .symlink("s", "/somewhere")
        .finish();
    apply(&lower, root, WhiteoutMode::Native).unwrap();
    let upper = Layer::new()
        // A file over a directory: the directory goes, with its content.
        .file("p", b"now a file")
        // A directory over a file.
        .dir("f/", 0o711)
        // A directory over a directory: kept, content too; metadata updated.
        .dir("keep/", 0o755)
        // A file over a symlink: the link is replaced, its target untouched.
        .file("s", b"plain")
        .file("f/new", b"n")
        .finish();
    apply(&upper, root, WhiteoutMode::Native).unwrap();
    assert_eq!(std::fs::read(root.join("p")).unwrap(), b"now a file");
    assert!(lstat(&root.join("f")).is_dir());
    assert_eq!(lstat(&root.join("f")).mode() & 0o7777, 0o711);
    assert_eq!(names(&root.join("f")), ["new"]);
    assert_eq!(lstat(&root.join("keep")).mode() & 0o7777, 0o755);
    assert_eq!(std::fs::read(root.join("keep/old")).unwrap(), b"old");
    assert!(lstat(&root.join("s")).is_file());
}

#[test]
fn root_entries_and_old_style_directories_are_handled() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700)).unwrap();
    let layer = Layer::new()
        .dir("./", 0o777)
        // Pre-POSIX: a regular-file entry whose name ends with '/'.
        .raw(EntryType::Regular, "old/", "", b"")
        .file("old/x", b"x")
        .finish();
    let applied = apply(&layer, root, WhiteoutMode::Native).unwrap();
    assert_eq!(applied.entries, 3);
    // The root entry does not change the snapshot root.
    assert_eq!(lstat(root).mode() & 0o7777, 0o700);
    assert!(lstat(&root.join("old")).is_dir());
}

#[test]
fn parent_through_dangling_symlink_is_created_inside_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // var/run -> /run, /run missing: var/run/x lands in <root>/run/x, as in a chroot.
    let layer = Layer::new()
        .dir("var/", 0o755)
        .symlink("var/run", "/run")
        .file("var/run/x", b"x")
        .symlink("rel", "var/../deeper/dir")
        .file("rel/y", b"y")
        .finish();
    apply(&layer, root, WhiteoutMode::Native).unwrap();
    assert_eq!(std::fs::read(root.join("run/x")).unwrap(), b"x");
    assert_eq!(std::fs::read(root.join("deeper/dir/y")).unwrap(), b"y");
}

#[test]
fn symlink_loops_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let layer = Layer::new()
        .symlink("a", "b")
        .symlink("b", "a")
        .file("a/x", b"x")
        .finish();
    let err = apply(&layer, root, WhiteoutMode::Native).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("a/x"), "{err}");
}

#[test]
fn parallel_layers_into_separate_roots() {
    let tmp = tempfile::tempdir().unwrap();
    let layers: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let mut l = Layer::new().dir("d/", 0o755);
            for j in 0..200 {
                l = l.file(&format!("d/{i}-{j}"), format!("{i}:{j}").as_bytes());
            }
            gzip(&l.finish())
        })
        .collect();
    std::thread::scope(|s| {
        for (i, blob) in layers.iter().enumerate() {
            let root = tmp.path().join(format!("{i}"));
            std::fs::create_dir(&root).unwrap();
            s.spawn(move || {
                let applied = apply_layer(
                    &blob[..],
                    Compression::Gzip,
                    &root,
                    WhiteoutMode::Overlay,
                    &ApplyOptions::default(),
                )
                .unwrap();
                assert_eq!(applied.entries, 201);
                assert_eq!(
                    std::fs::read(root.join(format!("d/{i}-7"))).unwrap(),
                    format!("{i}:7").as_bytes()
                );
            });
        }
    });
}

#[test]
fn sync_root_flushes() {
    let tmp = tempfile::tempdir().unwrap();
    super::super::sync_root(tmp.path()).unwrap();
    let err = super::super::sync_root(&tmp.path().join("missing")).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::NotFound);
}

#[test]
fn unknown_entry_types_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = Layer::new()
        .raw(EntryType::new(b'V'), "volume-label", "", b"")
        .finish();
    let err = apply(&layer, tmp.path(), WhiteoutMode::Native).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
    assert!(
        err.to_string().contains("unsupported tar entry type 'V'"),
        "{err}"
    );
}
