//! Storage helpers: deterministic test images (`berth-mkimage`), imports and exports
//! through the typed client, and a [`StorageView`] of a daemon's storage — what the API
//! lists and what is on disk — to compare before and after.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_http::api::types::*;
use berth_http::client::{encode_path, Client};
use berth_mkimage::tarball::{self, Entry};
use http_body_util::BodyExt;
use hyper::Method;

pub use berth_mkimage::{Built, Format, ImageKind};

use crate::bins::run_with_timeout;
use crate::TestDaemon;

/// Builds `kind` in `format` into `dir` (named after both), tagged `name` or the kind's
/// default name; returns where it is and what was built.
pub fn build_image(
    dir: &Path,
    kind: ImageKind,
    format: Format,
    name: Option<&str>,
) -> (PathBuf, Built) {
    let stem = format!("{kind:?}-{format:?}").to_lowercase();
    let out = match format {
        Format::OciDir => dir.join(stem),
        Format::OciArchive | Format::DockerArchive => dir.join(format!("{stem}.tar")),
    };
    let name = name.unwrap_or(kind.default_name());
    let built = berth_mkimage::build(kind, &out, format, name)
        .unwrap_or_else(|e| panic!("building {kind:?} as {format:?}: {e:#}"));
    (out, built)
}

/// Every file of an OCI layout directory: relative path → bytes.
pub fn read_layout(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

/// A deterministic tar of `files` (relative path → bytes) with an entry for every
/// parent directory.
pub fn tar_of(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut dirs = BTreeSet::new();
    for (path, bytes) in files {
        let mut p = path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            dirs.insert(parent.to_string());
            p = parent;
        }
        entries.push(Entry::file(path, 0o644, bytes.clone()));
    }
    entries.extend(dirs.iter().map(|d| Entry::dir(d, 0o755)));
    tarball::tar(&entries).expect("building a tar")
}

/// The `blobs/sha256/<hex>` path of a digest.
pub fn blob_path(digest: &str) -> String {
    format!(
        "blobs/sha256/{}",
        digest.strip_prefix("sha256:").unwrap_or(digest)
    )
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    berth_engine::ids::Digest::of_bytes(bytes).to_string()
}

/// An answer read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Content type.
    pub content_type: Option<String>,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// `method path` with `body` (JSON text) through the client's raw request, read
    /// whole; panics if no answer comes.
    pub async fn send(c: &Client, method: Method, path: &str, body: Option<&str>) -> Reply {
        let r = c
            .raw(method, path, body.map(|b| b.as_bytes().to_vec()))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        Reply {
            status: r.status.as_u16(),
            content_type: r.content_type,
            body: r.body.to_vec(),
        }
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts a JSON error of exactly `{"error":{"kind","message"}}` with this status
    /// and kind; returns the message.
    #[track_caller]
    pub fn error(&self, what: &str, status: u16, kind: &str) -> String {
        let body = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, status, "{what}: body {body}");
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/json"),
            "{what}: body {body}"
        );
        let v = self.json();
        let err = v["error"]
            .as_object()
            .unwrap_or_else(|| panic!("{what}: no error object: {body}"));
        assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{what}: {body}");
        assert_eq!(err.len(), 2, "{what}: kind and message only: {body}");
        assert_eq!(err["kind"], kind, "{what}: {body}");
        let message = err["message"]
            .as_str()
            .expect("a string message")
            .to_string();
        assert!(!message.is_empty(), "{what}: empty message");
        message
    }
}

/// `?namespace=` for `ns` (nothing for `default`).
pub fn ns_query(ns: &str) -> String {
    if ns == "default" {
        String::new()
    } else {
        format!("?namespace={}", encode_path(ns))
    }
}

/// `POST /v1/images/import?{query}` with `file` as the body; the answer whatever it is.
pub async fn import_raw(c: &Client, file: &Path, query: &str) -> Reply {
    let f = tokio::fs::File::open(file)
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", file.display()));
    let path = if query.is_empty() {
        "/v1/images/import".to_string()
    } else {
        format!("/v1/images/import?{query}")
    };
    let res = c
        .send_file(Method::POST, &path, f, "application/x-tar")
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = res
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("reading the answer to POST {path}: {e}"))
        .to_bytes()
        .to_vec();
    Reply {
        status,
        content_type,
        body,
    }
}

/// Imports `file` (query e.g. `namespace=a&name=x`); panics unless it is a 201.
pub async fn import(c: &Client, file: &Path, query: &str) -> ImportResponse {
    let r = import_raw(c, file, query).await;
    assert_eq!(
        r.status,
        201,
        "importing {}: {}",
        file.display(),
        String::from_utf8_lossy(&r.body)
    );
    serde_json::from_slice(&r.body).expect("an import answer")
}

/// `GET /v1/images/{name}/export`: the archive's bytes; panics on an error.
pub async fn export(c: &Client, name: &str, ns: &str) -> Vec<u8> {
    let path = format!("/v1/images/{}/export{}", encode_path(name), ns_query(ns));
    let r = c.raw(Method::GET, &path, None).await.expect("export");
    assert_eq!(
        r.status.as_u16(),
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.content_type.as_deref(), Some("application/x-tar"));
    r.body.to_vec()
}

/// `GET /v1/images`.
pub async fn images(c: &Client, ns: &str) -> Vec<ImageView> {
    let list: ImageList = c
        .call(
            Method::GET,
            &format!("/v1/images{}", ns_query(ns)),
            None::<&()>,
        )
        .await
        .expect("listing images");
    list.images
}

/// `GET /v1/images/{name}`.
pub async fn inspect(c: &Client, name: &str, ns: &str) -> ImageInspect {
    c.call(
        Method::GET,
        &format!("/v1/images/{}{}", encode_path(name), ns_query(ns)),
        None::<&()>,
    )
    .await
    .unwrap_or_else(|e| panic!("inspecting {name}: {e}"))
}

/// `DELETE /v1/images/{name}`.
pub async fn remove_image(c: &Client, name: &str, ns: &str) -> Deleted {
    c.call(
        Method::DELETE,
        &format!("/v1/images/{}{}", encode_path(name), ns_query(ns)),
        None::<&()>,
    )
    .await
    .unwrap_or_else(|e| panic!("removing {name}: {e}"))
}

/// `GET /v1/snapshots`.
pub async fn snapshots(c: &Client, ns: &str) -> Vec<SnapshotView> {
    let list: SnapshotList = c
        .call(
            Method::GET,
            &format!("/v1/snapshots{}", ns_query(ns)),
            None::<&()>,
        )
        .await
        .expect("listing snapshots");
    list.snapshots
}

/// `GET /v1/content`.
pub async fn content(c: &Client) -> Vec<ContentView> {
    let list: ContentList = c
        .call(Method::GET, "/v1/content", None::<&()>)
        .await
        .expect("listing content");
    list.content
}

/// `POST /v1/gc`.
pub async fn gc(c: &Client) -> GcReport {
    c.call(Method::POST, "/v1/gc", None::<&()>)
        .await
        .expect("garbage collection")
}

/// The whole journal.
pub async fn journal(c: &Client) -> Vec<EventView> {
    c.journal_page(1, 10_000)
        .await
        .expect("the journal")
        .records
}

/// What a daemon stores for one namespace, through the API and on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageView {
    /// Image name → target digest.
    pub images: BTreeMap<String, String>,
    /// Blob digest → size (all namespaces: the content store is shared).
    pub content: BTreeMap<String, u64>,
    /// Snapshot key → (parent, kind, storage id).
    pub snapshots: BTreeMap<String, (Option<String>, String, u64)>,
    /// `sha256:<hex>` of every file in `<root>/content/blobs/sha256`.
    pub blob_files: BTreeSet<String>,
    /// Every entry of `<root>/snapshots/<snapshotter>/snapshots`, as
    /// `<snapshotter>/<entry>`.
    pub snapshot_dirs: BTreeSet<String>,
    /// Every entry of `<root>/content/ingest`.
    pub ingests: BTreeSet<String>,
}

fn entries(dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
        Err(e) => panic!("reading {}: {e}", dir.display()),
    }
}

/// Reads a [`StorageView`] of namespace `ns`.
pub async fn storage_view(d: &TestDaemon, ns: &str) -> StorageView {
    let c = d.client();
    let root = d.root();
    let mut snapshot_dirs = BTreeSet::new();
    for snapshotter in entries(&root.join("snapshots")) {
        for e in entries(&root.join("snapshots").join(&snapshotter).join("snapshots")) {
            snapshot_dirs.insert(format!("{snapshotter}/{e}"));
        }
    }
    StorageView {
        images: images(&c, ns)
            .await
            .into_iter()
            .map(|i| (i.name, i.target.digest))
            .collect(),
        content: content(&c)
            .await
            .into_iter()
            .map(|b| (b.digest, b.size))
            .collect(),
        snapshots: snapshots(&c, ns)
            .await
            .into_iter()
            .map(|s| (s.key, (s.parent, s.kind, s.id)))
            .collect(),
        blob_files: entries(&root.join("content").join("blobs").join("sha256"))
            .into_iter()
            .map(|h| format!("sha256:{h}"))
            .collect(),
        snapshot_dirs,
        ingests: entries(&root.join("content").join("ingest")),
    }
}

impl StorageView {
    /// Asserts that the disk holds exactly what the API lists (for a daemon whose
    /// snapshots all live in this view's namespace): a file per blob, a directory per
    /// snapshot, no ingest.
    #[track_caller]
    pub fn assert_consistent(&self) {
        let listed: BTreeSet<String> = self.content.keys().cloned().collect();
        assert_eq!(self.blob_files, listed, "blob files vs content list");
        let ids: BTreeSet<String> = self
            .snapshots
            .values()
            .map(|(_, _, id)| id.to_string())
            .collect();
        let dirs: BTreeSet<String> = self
            .snapshot_dirs
            .iter()
            .map(|d| d.split_once('/').map_or(d.as_str(), |(_, e)| e).to_string())
            .collect();
        assert_eq!(dirs, ids, "snapshot storage vs snapshot list");
        assert!(self.ingests.is_empty(), "ingests left: {:?}", self.ingests);
    }

    /// Asserts that nothing at all is stored.
    #[track_caller]
    pub fn assert_empty(&self) {
        assert!(self.images.is_empty(), "images: {:?}", self.images);
        assert!(self.content.is_empty(), "content: {:?}", self.content);
        assert!(self.snapshots.is_empty(), "snapshots: {:?}", self.snapshots);
        assert!(
            self.blob_files.is_empty(),
            "blob files: {:?}",
            self.blob_files
        );
        assert!(
            self.snapshot_dirs.is_empty(),
            "snapshot storage: {:?}",
            self.snapshot_dirs
        );
        assert!(self.ingests.is_empty(), "ingests: {:?}", self.ingests);
    }
}

/// Bytes under `<root>/content/ingest` (all files, recursively).
pub fn ingest_bytes(root: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return 0;
        };
        if meta.is_dir() {
            std::fs::read_dir(p)
                .map(|rd| rd.filter_map(Result::ok).map(|e| walk(&e.path())).sum())
                .unwrap_or(0)
        } else {
            meta.len()
        }
    }
    walk(&root.join("content").join("ingest"))
}

/// Mount points at or below `dir` (from `findmnt`, or `/proc/self/mountinfo` when
/// findmnt is missing).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    let targets: Vec<String> = match Command::new("findmnt")
        .args(["-rn", "-o", "TARGET"])
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.replace("\\x20", " "))
            .collect(),
        _ => std::fs::read_to_string("/proc/self/mountinfo")
            .expect("reading mountinfo")
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(|t| t.replace("\\040", " ")))
            .collect(),
    };
    targets
        .into_iter()
        .filter(|t| t == &dir || t.starts_with(&format!("{dir}/")))
        .collect()
}

/// Unmounts its directory when dropped.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Err(e) = berth_engine::mount::unmount(&self.0) {
            eprintln!("unmounting {}: {e}", self.0.display());
        }
    }
}

/// Whether `tool` is on PATH.
pub fn have_tool(tool: &str) -> bool {
    Command::new("which")
        .arg(tool)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs an external tool to success (within 60 s); panics with its output otherwise.
pub fn run_tool(program: &str, args: &[&str]) -> String {
    let out = run_with_timeout(Command::new(program).args(args), Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The storage id of snapshot `key` in a listing.
#[track_caller]
pub fn snapshot_id(list: &[SnapshotView], key: &str) -> u64 {
    list.iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("snapshot {key} not listed"))
        .id
}
