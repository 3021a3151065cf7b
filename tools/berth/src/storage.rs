//! `berth image|snapshot|content|gc|system` commands.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use berth_http::api::types::*;
use berth_http::client::{encode_path, Client, ClientError};
use clap::Subcommand;
use http_body_util::BodyExt;
use hyper::Method;

use crate::output::{json, table};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an OCI image-layout archive or a docker save archive
    Import {
        /// The archive (tar)
        file: PathBuf,
        /// Name for the image (when the archive names none, or to rename)
        #[arg(long)]
        name: Option<String>,
        /// Platform to unpack (os/arch[/variant]); default: this host's
        #[arg(long)]
        platform: Option<String>,
    },
    /// Export an image as an OCI image-layout archive
    Export {
        /// Image name
        name: String,
        /// Output file
        file: PathBuf,
    },
    /// List images
    #[command(visible_alias = "list")]
    Ls,
    /// Show an image
    Inspect {
        /// Image name
        name: String,
    },
    /// Remove images (what only they referenced is collected)
    #[command(visible_alias = "remove")]
    Rm {
        /// Image names
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Give an image another name
    Tag {
        /// Existing name
        source: String,
        /// New name
        target: String,
    },
}

fn q(ns: &str) -> String {
    format!("namespace={}", encode_path(ns))
}

fn short(d: &str) -> String {
    d.strip_prefix("sha256:")
        .unwrap_or(d)
        .chars()
        .take(12)
        .collect()
}

/// Human size.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

async fn import(
    client: &Client,
    ns: &str,
    file: &Path,
    name: Option<&str>,
    platform: Option<&str>,
) -> anyhow::Result<ImportResponse> {
    let f = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    let mut path = format!("/v1/images/import?{}", q(ns));
    if let Some(n) = name {
        path.push_str(&format!("&name={}", encode_path(n)));
    }
    if let Some(p) = platform {
        path.push_str(&format!("&platform={}", encode_path(p)));
    }
    let res = client
        .send_file(Method::POST, &path, f, "application/x-tar")
        .await?;
    if !res.status().is_success() {
        return Err(Client::error_of(res).await.into());
    }
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?
        .to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

async fn export(client: &Client, ns: &str, name: &str, file: &Path) -> anyhow::Result<u64> {
    use tokio::io::AsyncWriteExt;
    let res = client
        .send(
            Method::GET,
            &format!("/v1/images/{}/export?{}", encode_path(name), q(ns)),
            None,
            &[],
        )
        .await?;
    if !res.status().is_success() {
        return Err(Client::error_of(res).await.into());
    }
    let tmp = file.with_extension("partial");
    let mut out = tokio::fs::File::create(&tmp)
        .await
        .with_context(|| format!("creating {}", tmp.display()))?;
    let mut body = res.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| anyhow::anyhow!("the export was cut off: {e}"))?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            out.write_all(&data).await?;
        }
    }
    out.sync_all().await?;
    drop(out);
    tokio::fs::rename(&tmp, file).await?;
    Ok(total)
}

pub async fn image(
    client: &Client,
    ns: &str,
    as_json: bool,
    c: &ImageCommand,
) -> anyhow::Result<i32> {
    match c {
        ImageCommand::Import {
            file,
            name,
            platform,
        } => {
            let res = import(client, ns, file, name.as_deref(), platform.as_deref()).await?;
            if as_json {
                json(&res)?;
            } else {
                for i in &res.images {
                    println!("{} {}", i.name, i.target.digest);
                }
            }
        }
        ImageCommand::Export { name, file } => {
            let n = export(client, ns, name, file).await?;
            if as_json {
                json(&serde_json::json!({"file": file, "bytes": n}))?;
            } else {
                println!("{} ({})", file.display(), size(n));
            }
        }
        ImageCommand::Ls => {
            let list: ImageList = client
                .call(Method::GET, &format!("/v1/images?{}", q(ns)), None::<&()>)
                .await?;
            if as_json {
                json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .images
                    .iter()
                    .map(|i| {
                        vec![
                            i.name.clone(),
                            short(&i.target.digest),
                            // `…image.manifest.v1+json` → `manifest`, `…index.v1+json`
                            // → `index`, docker's `…manifest.list.v2+json` → `list`.
                            i.target
                                .media_type
                                .rsplit('.')
                                .nth(1)
                                .unwrap_or("")
                                .to_string(),
                            i.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        ]
                    })
                    .collect();
                table(&["NAME", "DIGEST", "TYPE", "UPDATED"], &rows);
            }
        }
        ImageCommand::Inspect { name } => {
            let i: ImageInspect = client
                .call(
                    Method::GET,
                    &format!("/v1/images/{}?{}", encode_path(name), q(ns)),
                    None::<&()>,
                )
                .await?;
            json(&i)?;
        }
        ImageCommand::Rm { names } => {
            for n in names {
                let d: Deleted = client
                    .call(
                        Method::DELETE,
                        &format!("/v1/images/{}?{}", encode_path(n), q(ns)),
                        None::<&()>,
                    )
                    .await?;
                if as_json {
                    json(&d)?;
                } else {
                    println!("{}", d.deleted);
                }
            }
        }
        ImageCommand::Tag { source, target } => {
            let v: ImageView = client
                .call(
                    Method::POST,
                    &format!("/v1/images/{}/tag?{}", encode_path(source), q(ns)),
                    Some(&TagRequest {
                        target: target.clone(),
                    }),
                )
                .await?;
            if as_json {
                json(&v)?;
            } else {
                println!("{}", v.name);
            }
        }
    }
    Ok(0)
}

pub async fn snapshots(client: &Client, ns: &str, as_json: bool) -> anyhow::Result<i32> {
    let list: SnapshotList = client
        .call(
            Method::GET,
            &format!("/v1/snapshots?{}", q(ns)),
            None::<&()>,
        )
        .await?;
    if as_json {
        json(&list)?;
    } else {
        let rows: Vec<Vec<String>> = list
            .snapshots
            .iter()
            .map(|s| {
                vec![
                    if s.key.starts_with("sha256:") {
                        short(&s.key)
                    } else {
                        s.key.clone()
                    },
                    s.parent.as_deref().map(short).unwrap_or_default(),
                    s.kind.clone(),
                    s.id.to_string(),
                    size(s.size),
                ]
            })
            .collect();
        table(&["KEY", "PARENT", "KIND", "ID", "SIZE"], &rows);
    }
    Ok(0)
}

pub async fn content(client: &Client, as_json: bool) -> anyhow::Result<i32> {
    let list: ContentList = client.call(Method::GET, "/v1/content", None::<&()>).await?;
    if as_json {
        json(&list)?;
    } else {
        let rows: Vec<Vec<String>> = list
            .content
            .iter()
            .map(|c| {
                vec![
                    c.digest.clone(),
                    size(c.size),
                    c.committed_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                ]
            })
            .collect();
        table(&["DIGEST", "SIZE", "COMMITTED"], &rows);
    }
    Ok(0)
}

pub async fn label(
    client: &Client,
    ns: &str,
    as_json: bool,
    digest: &str,
    labels: berth_engine::ids::Labels,
) -> anyhow::Result<i32> {
    let v: ContentView = client
        .call(
            Method::PUT,
            &format!("/v1/content/{}/labels?{}", encode_path(digest), q(ns)),
            Some(&LabelsRequest { labels }),
        )
        .await?;
    if as_json {
        json(&v)?;
    } else {
        let l: Vec<String> = v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("{} {}", v.digest, l.join(","));
    }
    Ok(0)
}

pub async fn gc(client: &Client, ns: &str, as_json: bool) -> anyhow::Result<i32> {
    let r: GcReport = client
        .call(Method::POST, &format!("/v1/gc?{}", q(ns)), None::<&()>)
        .await?;
    if as_json {
        json(&r)?;
    } else {
        println!(
            "removed {} blob(s) and {} snapshot(s), freed {} in {} ms",
            r.content_removed,
            r.snapshots_removed,
            size(r.bytes_freed),
            r.took_ms
        );
    }
    Ok(0)
}

pub async fn df(client: &Client, as_json: bool) -> anyhow::Result<i32> {
    let d: Df = client
        .call(Method::GET, "/v1/system/df", None::<&()>)
        .await?;
    if as_json {
        json(&d)?;
    } else {
        let row = |name: &str, l: &DfLine| {
            vec![
                name.to_string(),
                l.count.to_string(),
                size(l.size),
                size(l.reclaimable),
            ]
        };
        table(
            &["TYPE", "COUNT", "SIZE", "RECLAIMABLE"],
            &[
                row("images", &d.images),
                row("content", &d.content),
                row("snapshots", &d.snapshots),
            ],
        );
    }
    Ok(0)
}

pub fn check_platform(p: &str) -> anyhow::Result<()> {
    if p.split('/').count() < 2 {
        bail!("platform {p:?} must be os/arch[/variant]");
    }
    Ok(())
}
