//! Parsing and selection against real-shaped documents, written inline.

use super::media::*;
use super::*;
use crate::ErrorKind;

/// An OCI index as `docker buildx` pushes it: amd64, arm64/v8 and one attestation
/// manifest per image (platform unknown/unknown, `vnd.docker.reference.type`).
const OCI_INDEX_DOC: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:1e5dc56b0bd8b2e0f2a1b4e95d1a1ee4c3d6d3a1e7a1c37a2d5b7c0c9b1e2f3a",
      "size": 1022,
      "platform": { "architecture": "amd64", "os": "linux" }
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80910",
      "size": 1022,
      "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" }
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b",
      "size": 566,
      "annotations": {
        "vnd.docker.reference.digest": "sha256:1e5dc56b0bd8b2e0f2a1b4e95d1a1ee4c3d6d3a1e7a1c37a2d5b7c0c9b1e2f3a",
        "vnd.docker.reference.type": "attestation-manifest"
      },
      "platform": { "architecture": "unknown", "os": "unknown" }
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c",
      "size": 566,
      "annotations": {
        "vnd.docker.reference.digest": "sha256:2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80910",
        "vnd.docker.reference.type": "attestation-manifest"
      },
      "platform": { "architecture": "unknown", "os": "unknown" }
    }
  ]
}"#;

/// A Docker manifest list (busybox-like), served without a `mediaType` hint.
const DOCKER_LIST_DOC: &str = r#"{
   "manifests": [
      {
         "digest": "sha256:907ca53d7e2947e849b839b1cd258c98fd3916c60f2e6e70c30edbf741ab6754",
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "platform": { "architecture": "amd64", "os": "linux" },
         "size": 528
      },
      {
         "digest": "sha256:c9249fdf56138f0d929e2080ae98ee9cb2946f71498fc1484288e6a935b5e5bc",
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "platform": { "architecture": "arm", "os": "linux", "variant": "v6" },
         "size": 527
      },
      {
         "digest": "sha256:a77fe109c026308f149d36484d795b42efe0fd29b332be9071f63e1634c36ac9",
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "platform": { "architecture": "arm", "os": "linux", "variant": "v7" },
         "size": 527
      },
      {
         "digest": "sha256:1fa89c01cd0473cedbd1a470abb8c139eeb80920edf1bc55de87851bfb63ea11",
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" },
         "size": 527
      },
      {
         "digest": "sha256:5a8b4b6f2c1c7fd2e0c4f5c1b9f3a0e6d4c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8",
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "platform": { "architecture": "386", "os": "linux" },
         "size": 527
      },
      {
         "digest": "sha256:6b9c5c7f3d2d8fe3f1d5f6d2c0f4b1f7e5d3c2b1f0e9d8c7b6a5f4e3d2c1b0a9",
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "platform": { "architecture": "s390x", "os": "linux" },
         "size": 528
      }
   ],
   "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
   "schemaVersion": 2
}"#;

/// An OCI manifest with a gzip and a zstd layer and an annotation.
const OCI_MANIFEST_DOC: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:b5d6fe0712636ceb7430189de28819e195e8966372edfc2d9409d79402a0dc16",
    "size": 581
  },
  "layers": [
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:4abcf20661432fb2d719aaf90656f55c287f8ca915dc1c92ec14ff61e67fbaf8",
      "size": 3408729
    },
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
      "digest": "sha256:ec562eabd705d25bfea8c8d79e4610775e375524af00552fe871d3338261563c",
      "size": 1210
    }
  ],
  "annotations": { "org.opencontainers.image.created": "2024-01-01T00:00:00Z" }
}"#;

/// A Docker schema 2 manifest as Docker Hub serves it.
const DOCKER_MANIFEST_DOC: &str = r#"{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 1457,
      "digest": "sha256:beae173ccac6ad749f76713cf4440fe3d21d1043fe616dfbe30775815d1d0f6a"
   },
   "layers": [
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 2220094,
         "digest": "sha256:7264a8db6415046d36d16ba98b79778e18accee6ffa71850405994cffa9be7de"
      }
   ]
}"#;

/// A schema 1 signed manifest (abridged).
const SCHEMA1_DOC: &str = r#"{
   "schemaVersion": 1,
   "name": "library/busybox",
   "tag": "latest",
   "architecture": "amd64",
   "fsLayers": [
      { "blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4" }
   ],
   "history": [ { "v1Compatibility": "{\"id\":\"x\"}" } ],
   "signatures": []
}"#;

/// A Docker image config, with Docker's extra fields and nulls.
const DOCKER_CONFIG_DOC: &str = r#"{
  "architecture": "amd64",
  "config": {
    "Hostname": "",
    "User": "",
    "ExposedPorts": { "8080/tcp": {}, "53/udp": {} },
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=b"],
    "Cmd": ["sh"],
    "Entrypoint": null,
    "Volumes": null,
    "WorkingDir": "/srv",
    "OnBuild": null,
    "Labels": { "z": "last", "a": "first" },
    "StopSignal": "SIGQUIT"
  },
  "container": "0f5e3e5b6c3a",
  "created": "2023-05-19T20:19:22.751398522Z",
  "docker_version": "20.10.23",
  "history": [
    { "created": "2023-05-19T20:19:22.642570693Z", "created_by": "ADD file:x in / " },
    { "created": "2023-05-19T20:19:22.751398522Z", "created_by": "CMD [\"sh\"]", "empty_layer": true }
  ],
  "os": "linux",
  "rootfs": {
    "type": "layers",
    "diff_ids": ["sha256:9547b4c33213e630a0ca602a989ecc094e042146ae8afa502e1e65af6473db03"]
  }
}"#;

fn parse_err(hint: Option<&str>, doc: &str) -> EngineError {
    let e = parse(hint, doc.as_bytes()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    e
}

fn index(hint: Option<&str>, doc: &str) -> Index {
    match parse(hint, doc.as_bytes()).unwrap() {
        Parsed::Index(i) => i,
        other => panic!("not an index: {other:?}"),
    }
}

fn manifest(hint: Option<&str>, doc: &str) -> Manifest {
    match parse(hint, doc.as_bytes()).unwrap() {
        Parsed::Manifest(m) => m,
        other => panic!("not a manifest: {other:?}"),
    }
}

fn plat(s: &str) -> Platform {
    Platform::parse(s).unwrap()
}

fn digest_of(d: &Descriptor) -> String {
    descriptor_digest(d).unwrap().to_string()
}

#[test]
fn oci_index_by_hint_by_field_and_by_shape() {
    let i = index(Some(OCI_INDEX), OCI_INDEX_DOC);
    assert_eq!(i.media_type(), OCI_INDEX);
    assert_eq!(i.manifests().len(), 4);
    let i2 = index(None, OCI_INDEX_DOC);
    assert_eq!(i, i2);
    // no mediaType field and no hint: the shape says index.
    let bare = OCI_INDEX_DOC.replace(
        r#""mediaType": "application/vnd.oci.image.index.v1+json","#,
        "",
    );
    assert_eq!(index(None, &bare).media_type(), OCI_INDEX);
    // a generic Content-Type is no hint
    assert_eq!(
        index(Some("application/json"), &bare).media_type(),
        OCI_INDEX
    );
    // parameters in the hint are ignored
    assert_eq!(
        index(
            Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
            &bare
        )
        .media_type(),
        OCI_INDEX
    );
}

#[test]
fn select_from_oci_index_never_takes_attestations() {
    let i = index(None, OCI_INDEX_DOC);
    let amd = i.select(&plat("linux/amd64")).unwrap();
    assert!(digest_of(amd).starts_with("sha256:1e5dc5"));
    for arm in ["linux/arm64", "linux/arm64/v8"] {
        let d = i.select(&plat(arm)).unwrap();
        assert!(digest_of(d).starts_with("sha256:2b3c4d"), "{arm}");
    }
    // unknown/unknown is never chosen, even when asked for.
    let e = i.select(&plat("unknown/unknown")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = i.select(&plat("linux/s390x")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let msg = e.to_string();
    assert!(msg.contains("linux/s390x"), "{msg}");
    assert!(msg.contains("linux/amd64, linux/arm64/v8"), "{msg}");
    assert!(!msg.contains("unknown"), "{msg}");
    // the host is amd64 or arm64 here: something is chosen and it is not an attestation.
    let h = i.select(&Platform::host());
    if let Ok(d) = h {
        assert!(d.annotations().is_none());
    }
}

#[test]
fn attestation_only_index_offers_nothing() {
    let doc = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
      {"mediaType":"application/vnd.oci.image.manifest.v1+json",
       "digest":"sha256:3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b","size":566,
       "annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}"#;
    let e = index(None, doc).select(&plat("linux/amd64")).unwrap_err();
    assert!(e.to_string().contains("no runnable image"), "{e}");
}

#[test]
fn docker_list_and_select_order() {
    let i = index(None, DOCKER_LIST_DOC);
    assert_eq!(i.media_type(), DOCKER_MANIFEST_LIST);
    let pick = |p: &str| digest_of(i.select(&plat(p)).unwrap());
    assert!(pick("linux/amd64").starts_with("sha256:907ca5"));
    assert!(pick("linux/arm64/v8").starts_with("sha256:1fa89c"));
    // arm/v7 is preferred to arm/v6 on a v7 host; a v6 host takes v6; arm64 without
    // its own entry would fall back to arm/v7 (tested below).
    assert!(pick("linux/arm/v7").starts_with("sha256:a77fe1"));
    assert!(pick("linux/arm").starts_with("sha256:a77fe1"));
    assert!(pick("linux/arm/v6").starts_with("sha256:c9249f"));
    assert!(pick("linux/386").starts_with("sha256:5a8b4b"));
    assert!(pick("linux/s390x").starts_with("sha256:6b9c5c"));
    assert_eq!(
        i.select(&plat("linux/arm/v5")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        i.select(&plat("windows/amd64")).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Without amd64 and arm64 entries: amd64 falls back to 386, arm64 to arm/v7.
    let reduced = DOCKER_LIST_DOC
        .replace(
            "\"architecture\": \"amd64\"",
            "\"architecture\": \"mips64le\"",
        )
        .replace(
            "\"architecture\": \"arm64\"",
            "\"architecture\": \"riscv64\"",
        );
    let r = index(Some(DOCKER_MANIFEST_LIST), &reduced);
    assert!(digest_of(r.select(&plat("linux/amd64")).unwrap()).starts_with("sha256:5a8b4b"));
    assert!(digest_of(r.select(&plat("linux/arm64")).unwrap()).starts_with("sha256:a77fe1"));
}

#[test]
fn exact_variant_preferred_among_equals_then_index_order() {
    let doc = |first: &str, second: &str| {
        format!(
            r#"{{"schemaVersion":2,"manifests":[
          {{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
            "digest":"sha256:{}","platform":{}}},
          {{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
            "digest":"sha256:{}","platform":{}}}]}}"#,
            "a".repeat(64),
            first,
            "b".repeat(64),
            second
        )
    };
    let bare = r#"{"os":"linux","architecture":"arm64"}"#;
    let v8 = r#"{"os":"linux","architecture":"arm64","variant":"v8"}"#;
    for (first, second, wanted, expect) in [
        (bare, v8, "linux/arm64/v8", 'b'),
        (v8, bare, "linux/arm64/v8", 'a'),
        (v8, bare, "linux/arm64", 'b'),
        (bare, bare, "linux/arm64", 'a'),
    ] {
        let i = index(None, &doc(first, second));
        let got = digest_of(i.select(&plat(wanted)).unwrap());
        assert_eq!(got, format!("sha256:{}", expect.to_string().repeat(64)));
    }
    // an entry without a platform is taken only when none with one matches
    let no_platform = doc(r#"null"#, r#"{"os":"linux","architecture":"amd64"}"#);
    let i = index(None, &no_platform);
    assert!(digest_of(i.select(&plat("linux/amd64")).unwrap()).ends_with('b'));
    assert!(digest_of(i.select(&plat("linux/s390x")).unwrap()).ends_with('a'));
}

#[test]
fn oci_manifest() {
    let m = manifest(Some(OCI_MANIFEST), OCI_MANIFEST_DOC);
    assert_eq!(m.media_type(), OCI_MANIFEST);
    assert_eq!(m.config().media_type, OCI_CONFIG);
    assert_eq!(m.config().size, 581);
    assert_eq!(m.layers().len(), 2);
    assert_eq!(m.layers()[1].media_type, OCI_LAYER_ZSTD);
    assert_eq!(
        m.layers()[0].digest.as_str(),
        "sha256:4abcf20661432fb2d719aaf90656f55c287f8ca915dc1c92ec14ff61e67fbaf8"
    );
    assert_eq!(manifest(None, OCI_MANIFEST_DOC), m);
}

#[test]
fn docker_manifest_and_config() {
    let m = manifest(None, DOCKER_MANIFEST_DOC);
    assert_eq!(m.media_type(), DOCKER_MANIFEST);
    assert_eq!(m.config().media_type, DOCKER_CONFIG);
    assert_eq!(m.layers()[0].media_type, DOCKER_LAYER_GZIP);
    let m2 = manifest(Some(DOCKER_MANIFEST), DOCKER_MANIFEST_DOC);
    assert_eq!(m, m2);

    let c = Config::parse(DOCKER_CONFIG_DOC.as_bytes()).unwrap();
    c.check_manifest(&m).unwrap();
    assert_eq!(c.cmd(), ["sh"]);
    assert!(c.entrypoint().is_empty());
    assert_eq!(c.env().len(), 2);
    assert_eq!(c.working_dir(), Some("/srv"));
    assert_eq!(c.user(), None);
    assert_eq!(c.stop_signal(), Some("SIGQUIT"));
    assert_eq!(c.exposed_ports(), ["53/udp", "8080/tcp"]);
    let labels: Vec<_> = c.labels().into_iter().collect();
    assert_eq!(
        labels,
        [("a".into(), "first".into()), ("z".into(), "last".into())]
    );
    assert_eq!(c.platform(), plat("linux/amd64"));
    assert_eq!(c.diff_ids().len(), 1);
    assert_eq!(c.chain_ids(), c.diff_ids());

    // two layers in the manifest, one diff id: a clear error
    let e = c
        .check_manifest(&manifest(None, OCI_MANIFEST_DOC))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("1 diff ids but manifest has 2 layers"),
        "{e}"
    );
}

#[test]
fn config_refusals() {
    let bad_diff = DOCKER_CONFIG_DOC.replace(
        "sha256:9547b4c33213e630a0ca602a989ecc094e042146ae8afa502e1e65af6473db03",
        "sha512:abcd",
    );
    let e = Config::parse(bad_diff.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("only sha256"), "{e}");
    let bad_type = DOCKER_CONFIG_DOC.replace("\"type\": \"layers\"", "\"type\": \"volumes\"");
    assert!(Config::parse(bad_type.as_bytes()).is_err());
    assert!(Config::parse(b"{}").is_err());
    assert!(Config::parse(b"garbage").is_err());
    // a minimal OCI config
    let c = Config::parse(
        br#"{"architecture":"arm64","variant":"v8","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    )
    .unwrap();
    assert_eq!(c.platform().to_string(), "linux/arm64/v8");
    assert!(c.cmd().is_empty() && c.env().is_empty() && c.labels().is_empty());
}

#[test]
fn schema1_is_refused_every_way() {
    for hint in [
        None,
        Some(DOCKER_SCHEMA1_MANIFEST),
        Some(DOCKER_SCHEMA1_SIGNED),
        Some("application/json"),
    ] {
        let e = parse_err(hint, SCHEMA1_DOC);
        assert_eq!(e.to_string(), SCHEMA1_REFUSAL);
    }
    // served as schema 1 whatever the body
    let e = parse_err(Some(DOCKER_SCHEMA1_SIGNED), DOCKER_MANIFEST_DOC);
    assert_eq!(e.to_string(), SCHEMA1_REFUSAL);
    assert!(SCHEMA1_REFUSAL.contains("push the image again with a current client"));
}

#[test]
fn garbage_and_unknown_types() {
    for junk in [
        "",
        "garbage",
        "[1,2]",
        "null",
        "\"x\"",
        "{\"schemaVersion\":2}",
    ] {
        parse_err(None, junk);
    }
    let e = parse_err(Some("application/vnd.example.thing+json"), OCI_MANIFEST_DOC);
    assert!(
        e.to_string().contains("application/vnd.example.thing+json"),
        "{e}"
    );
    let odd = OCI_MANIFEST_DOC.replace(
        "\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",",
        "\"mediaType\": \"application/vnd.example.manifest+json\",",
    );
    let e = parse_err(None, &odd);
    assert!(
        e.to_string()
            .contains("application/vnd.example.manifest+json"),
        "{e}"
    );
    // an OCI config is not an image document
    let e = parse_err(Some(OCI_CONFIG), OCI_MANIFEST_DOC);
    assert!(e.to_string().contains(OCI_CONFIG), "{e}");
}

#[test]
fn kind_mismatches() {
    let e = parse_err(Some(OCI_INDEX), OCI_MANIFEST_DOC);
    assert!(e.to_string().contains("served as"), "{e}");
    let e = parse_err(Some(OCI_MANIFEST), DOCKER_LIST_DOC);
    assert!(e.to_string().contains("served as"), "{e}");
    // no mediaType field but served as a manifest while shaped as an index
    let bare = OCI_INDEX_DOC.replace(
        r#""mediaType": "application/vnd.oci.image.index.v1+json","#,
        "",
    );
    let e = parse_err(Some(OCI_MANIFEST), &bare);
    assert!(e.to_string().contains("it is an index"), "{e}");
    // both shapes
    parse_err(
        None,
        r#"{"schemaVersion":2,"manifests":[],"layers":[],"config":{}}"#,
    );
}

#[test]
fn validation() {
    // schema version
    let v3 = OCI_MANIFEST_DOC.replace("\"schemaVersion\": 2", "\"schemaVersion\": 3");
    assert!(parse_err(None, &v3).to_string().contains("schemaVersion 3"));
    let none = OCI_MANIFEST_DOC.replace("\"schemaVersion\": 2,", "");
    assert!(parse_err(None, &none).to_string().contains("schemaVersion"));
    // negative and fractional sizes
    let neg = OCI_MANIFEST_DOC.replace("\"size\": 1210", "\"size\": -1");
    let e = parse_err(None, &neg);
    assert!(e.to_string().contains("layer 1 size -1"), "{e}");
    let frac = DOCKER_LIST_DOC.replace("\"size\": 528", "\"size\": 1.5");
    let e = parse_err(None, &frac);
    assert!(e.to_string().contains("index entry 0 size 1.5"), "{e}");
    let neg_cfg = OCI_MANIFEST_DOC.replace("\"size\": 581", "\"size\": -581");
    assert!(parse_err(None, &neg_cfg)
        .to_string()
        .contains("config size"));
    // digests: sha512 (valid OCI, refused by berth) and malformed
    let sha512 = OCI_MANIFEST_DOC.replace(
        "sha256:ec562eabd705d25bfea8c8d79e4610775e375524af00552fe871d3338261563c",
        &format!("sha512:{}", "ab".repeat(64)),
    );
    let e = parse_err(None, &sha512);
    assert!(
        e.to_string().contains("layer 1") && e.to_string().contains("sha256"),
        "{e}"
    );
    let upper = DOCKER_LIST_DOC.replace(
        "sha256:907ca53d7e2947e849b839b1cd258c98fd3916c60f2e6e70c30edbf741ab6754",
        "sha256:907CA53D7E2947E849B839B1CD258C98FD3916C60F2E6E70C30EDBF741AB6754",
    );
    parse_err(None, &upper);
    // layer and config media types
    let bad_layer = OCI_MANIFEST_DOC.replace(OCI_LAYER_ZSTD, "application/vnd.example.blob");
    let e = parse_err(None, &bad_layer);
    assert!(
        e.to_string().contains("application/vnd.example.blob"),
        "{e}"
    );
    let bad_cfg = OCI_MANIFEST_DOC.replace(OCI_CONFIG, "application/vnd.oci.empty.v1+json");
    let e = parse_err(None, &bad_cfg);
    assert!(
        e.to_string().contains("application/vnd.oci.empty.v1+json"),
        "{e}"
    );
    // missing pieces
    let no_layers = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,
        "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}}"#;
    assert!(parse_err(None, no_layers).to_string().contains("no layers"));
    // every known layer type is accepted
    for t in [
        OCI_LAYER_TAR,
        OCI_LAYER_GZIP,
        OCI_LAYER_NONDIST_TAR,
        OCI_LAYER_NONDIST_GZIP,
        OCI_LAYER_NONDIST_ZSTD,
        DOCKER_LAYER_TAR,
        DOCKER_LAYER_GZIP,
        DOCKER_LAYER_ZSTD,
        DOCKER_LAYER_FOREIGN_GZIP,
    ] {
        let doc = OCI_MANIFEST_DOC.replace(OCI_LAYER_ZSTD, t);
        assert_eq!(manifest(None, &doc).layers()[1].media_type, t);
    }
}
