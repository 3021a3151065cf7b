//! Whiteouts and opaque directories, in both modes.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::*;

fn lower() -> Vec<u8> {
    Layer::new()
        .dir("a/", 0o755)
        .file("a/x", b"x")
        .file("a/y", b"y")
        .dir("b/", 0o755)
        .dir("b/deep/", 0o755)
        .file("b/deep/z", b"z")
        .dir("d/", 0o755)
        .file("d/old1", b"1")
        .dir("d/sub/", 0o755)
        .file("d/sub/old2", b"2")
        .dir("e/", 0o755)
        .file("e/old", b"old")
        .finish()
}

fn assert_whiteout_device(p: &Path) {
    let md = lstat(p);
    assert!(md.file_type().is_char_device(), "{}", p.display());
    assert_eq!(md.rdev(), 0);
}

#[test]
fn native_whiteouts_remove_lower_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    apply(&lower(), root, WhiteoutMode::Native).unwrap();
    let upper = Layer::new()
        .file("a/.wh.x", b"")
        .file(".wh.b", b"")
        .file("a/.wh.missing", b"")
        .file("nodir/.wh.x", b"")
        .file("a/.wh..wh.plnk", b"")
        .finish();
    let applied = apply(&upper, root, WhiteoutMode::Native).unwrap();
    assert_eq!(applied.entries, 5);
    assert_eq!(names(&root.join("a")), ["y"]);
    assert_eq!(names(root), ["a", "d", "e"]);
}

#[test]
fn overlay_whiteouts_are_character_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let upper = Layer::new()
        .dir("a/", 0o755)
        .file("a/.wh.x", b"")
        .file(".wh.b", b"")
        .file("a/.wh..wh.plnk", b"")
        .finish();
    apply(&upper, root, WhiteoutMode::Overlay).unwrap();
    assert_eq!(names(&root.join("a")), ["x"]);
    assert_whiteout_device(&root.join("a/x"));
    assert_whiteout_device(&root.join("b"));
    assert_eq!(names(root), ["a", "b"]);
}

#[test]
fn native_opaque_directory_keeps_only_this_layers_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    apply(&lower(), root, WhiteoutMode::Native).unwrap();
    let upper = Layer::new()
        // The usual order: marker first.
        .dir("d/", 0o755)
        .file("d/.wh..wh..opq", b"")
        .file("d/new", b"new")
        // The marker after some of the directory's own entries, which stay.
        .dir("e/", 0o755)
        .file("e/mine", b"mine")
        .dir("e/sub/", 0o755)
        .file("e/sub/mine2", b"m2")
        .file("e/.wh..wh..opq", b"")
        .finish();
    apply(&upper, root, WhiteoutMode::Native).unwrap();
    assert_eq!(names(&root.join("d")), ["new"]);
    assert_eq!(names(&root.join("e")), ["mine", "sub"]);
    assert_eq!(names(&root.join("e/sub")), ["mine2"]);
}

#[test]
fn native_opaque_recurses_into_redeclared_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    apply(&lower(), root, WhiteoutMode::Native).unwrap();
    // d/sub existed below; this layer re-declares it and adds a file, then marks d
    // opaque: d/sub stays with only this layer's file.
    let upper = Layer::new()
        .dir("d/sub/", 0o700)
        .file("d/sub/fresh", b"f")
        .file("d/.wh..wh..opq", b"")
        .finish();
    apply(&upper, root, WhiteoutMode::Native).unwrap();
    assert_eq!(names(&root.join("d")), ["sub"]);
    assert_eq!(names(&root.join("d/sub")), ["fresh"]);
}

#[test]
fn overlay_opaque_directory_gets_the_xattr() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let upper = Layer::new()
        .dir("d/", 0o755)
        .file("d/.wh..wh..opq", b"")
        .file("d/new", b"new")
        // Marker for a directory the layer does not list: created.
        .file("implicit/.wh..wh..opq", b"")
        .finish();
    apply(&upper, root, WhiteoutMode::Overlay).unwrap();
    assert_eq!(names(&root.join("d")), ["new"]);
    assert_eq!(
        xattr::get(root.join("d"), "trusted.overlay.opaque")
            .unwrap()
            .unwrap(),
        b"y"
    );
    assert_eq!(
        xattr::get(root.join("implicit"), "trusted.overlay.opaque")
            .unwrap()
            .unwrap(),
        b"y"
    );
    assert!(names(&root.join("implicit")).is_empty());
}

#[test]
fn a_layer_does_not_white_out_its_own_entries() {
    for mode in [WhiteoutMode::Native, WhiteoutMode::Overlay] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let layer = Layer::new()
            .file("before", b"kept")
            .file(".wh.before", b"")
            .file(".wh.after", b"")
            .file("after", b"kept too")
            .finish();
        apply(&layer, root, mode).unwrap();
        assert_eq!(
            std::fs::read(root.join("before")).unwrap(),
            b"kept",
            "{mode:?}"
        );
        assert_eq!(
            std::fs::read(root.join("after")).unwrap(),
            b"kept too",
            "{mode:?}"
        );
        assert_eq!(names(root), ["after", "before"], "{mode:?}");
    }
}

#[test]
fn bad_whiteout_names_are_refused() {
    for name in [".wh.", "a/.wh..", "a/.wh..."] {
        for mode in [WhiteoutMode::Native, WhiteoutMode::Overlay] {
            let tmp = tempfile::tempdir().unwrap();
            let layer = Layer::new()
                .dir("a/", 0o755)
                .raw(tar::EntryType::Regular, name, "", b"")
                .finish();
            let err = apply(&layer, tmp.path(), mode).unwrap_err();
            assert_eq!(
                err.kind(),
                crate::ErrorKind::InvalidArgument,
                "{name}: {err}"
            );
        }
    }
}

/// The overlay representation really works: mount two unpacked layers and look.
#[test]
fn overlay_mount_honours_whiteouts_and_opaque_dirs() {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let tmp = tempfile::tempdir().unwrap();
    let (l1, l2, merged) = (
        tmp.path().join("l1"),
        tmp.path().join("l2"),
        tmp.path().join("m"),
    );
    for d in [&l1, &l2, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    apply(&lower(), &l1, WhiteoutMode::Overlay).unwrap();
    let upper = Layer::new()
        .file("a/.wh.x", b"")
        .file(".wh.b", b"")
        .dir("d/", 0o755)
        .file("d/.wh..wh..opq", b"")
        .file("d/new", b"new")
        .finish();
    apply(&upper, &l2, WhiteoutMode::Overlay).unwrap();
    let data = format!("lowerdir={}:{}", l2.display(), l1.display());
    if let Err(e) = mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    ) {
        eprintln!("skipping: cannot mount overlayfs here: {e}");
        return;
    }
    let seen = (
        names(&merged.join("a")),
        names(&merged),
        names(&merged.join("d")),
    );
    umount2(&merged, MntFlags::MNT_DETACH).unwrap();
    assert_eq!(seen.0, ["y"]);
    assert_eq!(seen.1, ["a", "d", "e"]);
    assert_eq!(seen.2, ["new"]);
}
