//! The byte side: compression, digests, truncation.

use std::io::Read;

use super::*;
use crate::ErrorKind;

fn sample() -> Vec<u8> {
    let big: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    Layer::new()
        .dir("data/", 0o755)
        .file("data/big", &big)
        .file("data/small", b"small")
        .finish()
}

#[test]
fn media_types() {
    use Compression::*;
    for (mt, want) in [
        ("application/vnd.oci.image.layer.v1.tar", None),
        ("application/vnd.oci.image.layer.v1.tar+gzip", Gzip),
        ("application/vnd.oci.image.layer.v1.tar+zstd", Zstd),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar",
            None,
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            Gzip,
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
            Zstd,
        ),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", Gzip),
        (
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            Gzip,
        ),
    ] {
        assert_eq!(Compression::from_media_type(mt).unwrap(), want, "{mt}");
    }
    for bad in [
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar+bzip2",
        "",
    ] {
        let err = Compression::from_media_type(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn every_compression_gives_the_same_tree_and_diff_id() {
    let tar = sample();
    let diff_id = sha256(&tar);
    for (compression, blob) in [
        (Compression::None, tar.clone()),
        (Compression::Gzip, gzip(&tar)),
        (Compression::Zstd, zstd(&tar)),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let opts = ApplyOptions {
            expected_diff_id: Some(&diff_id),
            hash_compressed: true,
        };
        let applied = apply_layer(
            &blob[..],
            compression,
            tmp.path(),
            WhiteoutMode::Overlay,
            &opts,
        )
        .unwrap_or_else(|e| panic!("{compression}: {e}"));
        assert_eq!(applied.diff_id, diff_id, "{compression}");
        assert_eq!(applied.compressed, Some(sha256(&blob)), "{compression}");
        assert_eq!(applied.uncompressed_size, tar.len() as u64);
        assert_eq!(applied.entries, 3);
        let big = std::fs::read(tmp.path().join("data/big")).unwrap();
        assert_eq!(big.len(), 3 * 1024 * 1024);
        assert!(big
            .iter()
            .enumerate()
            .all(|(i, &b)| b == u8::try_from(i % 251).unwrap()));
    }
}

#[test]
fn diff_id_covers_trailing_padding() {
    // Writers pad the stream to a record size after the end-of-archive marker; the
    // diff_id is over every byte, padding included.
    let mut tar = sample();
    tar.extend_from_slice(&[0u8; 10240]);
    let tmp = tempfile::tempdir().unwrap();
    let applied = apply_layer(
        &gzip(&tar)[..],
        Compression::Gzip,
        tmp.path(),
        WhiteoutMode::Native,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(applied.diff_id, sha256(&tar));
    assert_eq!(applied.uncompressed_size, tar.len() as u64);
    assert_eq!(applied.compressed, None);
}

#[test]
fn multi_member_gzip() {
    let tar = sample();
    let (a, b) = tar.split_at(700_000);
    let mut blob = gzip(a);
    blob.extend(gzip(b));
    let tmp = tempfile::tempdir().unwrap();
    let applied = apply_layer(
        &blob[..],
        Compression::Gzip,
        tmp.path(),
        WhiteoutMode::Native,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(applied.diff_id, sha256(&tar));
}

#[test]
fn diff_id_mismatch_is_refused() {
    let tar = sample();
    let wrong = sha256(b"something else");
    let tmp = tempfile::tempdir().unwrap();
    let opts = ApplyOptions {
        expected_diff_id: Some(&wrong),
        hash_compressed: false,
    };
    let err = apply_layer(
        &gzip(&tar)[..],
        Compression::Gzip,
        tmp.path(),
        WhiteoutMode::Overlay,
        &opts,
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    let msg = err.to_string();
    assert!(
        msg.contains(wrong.as_str()) && msg.contains(sha256(&tar).as_str()),
        "{msg}"
    );
}

#[test]
fn magic_must_match_the_media_type() {
    let tar = sample();
    let cases = [
        (Compression::Gzip, tar.clone(), "declared gzip"),
        (Compression::Zstd, gzip(&tar), "gzip magic"),
        (Compression::None, gzip(&tar), "gzip magic"),
        (Compression::None, zstd(&tar), "zstd magic"),
        (Compression::Gzip, Vec::new(), "empty stream"),
    ];
    for (compression, blob, needle) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let err = apply_layer(
            &blob[..],
            compression,
            tmp.path(),
            WhiteoutMode::Overlay,
            &ApplyOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(err.to_string().contains(needle), "{compression}: {err}");
        // Refused before anything was written.
        assert!(names(tmp.path()).is_empty());
    }
}

#[test]
fn truncated_streams_fail_clearly() {
    let tar = sample();
    let gz = gzip(&tar);
    let zs = zstd(&tar);
    let cases: Vec<(Compression, Vec<u8>, &str)> = vec![
        (
            Compression::Gzip,
            gz[..gz.len() / 2].to_vec(),
            "corrupt or truncated",
        ),
        (
            Compression::Gzip,
            gz[..gz.len() - 4].to_vec(),
            "corrupt or truncated",
        ),
        (
            Compression::Zstd,
            zs[..zs.len() / 2].to_vec(),
            "corrupt or truncated",
        ),
        // In the middle of a file's data.
        (
            Compression::None,
            tar[..2 * 1024 * 1024].to_vec(),
            "truncated",
        ),
        // In the middle of a header.
        (Compression::None, tar[..512 + 100].to_vec(), "truncated"),
        // Exactly at an entry boundary: no end-of-archive marker.
        (
            Compression::None,
            Layer::new().file("a", b"a").unterminated(),
            "end-of-archive marker",
        ),
        (Compression::None, Vec::new(), "end-of-archive marker"),
    ];
    for (i, (compression, blob, needle)) in cases.into_iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let err = apply_layer(
            &blob[..],
            compression,
            tmp.path(),
            WhiteoutMode::Native,
            &ApplyOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "case {i}: {err}");
        assert!(err.to_string().contains(needle), "case {i}: {err}");
    }
}

#[test]
fn a_matching_diff_id_vouches_for_a_stream_without_end_marker() {
    let tar = Layer::new().file("a", b"a").unterminated();
    let diff_id = sha256(&tar);
    let tmp = tempfile::tempdir().unwrap();
    let opts = ApplyOptions {
        expected_diff_id: Some(&diff_id),
        hash_compressed: false,
    };
    apply_layer(
        &tar[..],
        Compression::None,
        tmp.path(),
        WhiteoutMode::Native,
        &opts,
    )
    .unwrap();
    assert_eq!(std::fs::read(tmp.path().join("a")).unwrap(), b"a");
}

#[test]
fn corrupt_header_checksum_is_refused() {
    let mut tar = sample();
    tar[0] ^= 0x55;
    let tmp = tempfile::tempdir().unwrap();
    let err = apply(&tar, tmp.path(), WhiteoutMode::Native).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("checksum"), "{err}");
}

/// A source that fails after some bytes, like a dropped download.
struct Failing(Vec<u8>, usize);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.1 >= self.0.len() / 2 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset",
            ));
        }
        let n = buf.len().min(self.0.len() / 2 - self.1).min(4096);
        buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
        self.1 += n;
        Ok(n)
    }
}

#[test]
fn a_failing_source_is_unavailable() {
    let blob = gzip(&sample());
    let tmp = tempfile::tempdir().unwrap();
    let err = apply_layer(
        Failing(blob, 0),
        Compression::Gzip,
        tmp.path(),
        WhiteoutMode::Native,
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("connection reset"), "{err}");
}

#[test]
fn missing_root_is_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let err = apply(&sample(), &tmp.path().join("nope"), WhiteoutMode::Native).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}
