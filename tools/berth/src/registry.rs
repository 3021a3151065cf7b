//! `berth pull|push|login`: registries.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use berth_http::api::types::{PullImageRequest, PullImageResponse, PushImageRequest};
use berth_http::client::Client;
use clap::Args;

use crate::output::json;
use crate::storage::size;

/// `berth pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// host[:port]/repo[:tag][@sha256:…]
    pub reference: String,
    /// Platform to pull and unpack (os/arch[/variant]); default: this host's
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image name when done
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `berth push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image to push
    pub name: String,
    /// Where to push it (host[:port]/repo[:tag]); default: the image's name
    pub target: Option<String>,
}

/// `berth login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (host[:port])
    pub registry: String,
    /// User name
    #[arg(long, short = 'u')]
    pub username: String,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    /// The docker-compatible credentials file berthd reads
    #[arg(
        long,
        env = "BERTH_CREDENTIALS_FILE",
        default_value = "/root/.docker/config.json"
    )]
    pub credentials_file: PathBuf,
}

/// Whether an image name starts with a registry host (`host.domain/…`, `host:port/…`,
/// `localhost/…`), as a reference must for berth to pull it.
pub fn names_registry(image: &str) -> bool {
    image.split_once('/').is_some_and(|(first, _)| {
        first.contains('.') || first.contains(':') || first == "localhost"
    })
}

fn short(d: &str) -> String {
    d.strip_prefix("sha256:")
        .unwrap_or(d)
        .chars()
        .take(12)
        .collect()
}

/// Per-layer progress bars (indicatif) on a terminal.
struct Bars {
    multi: indicatif::MultiProgress,
    layers: BTreeMap<String, indicatif::ProgressBar>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: indicatif::MultiProgress::new(),
            layers: BTreeMap::new(),
        }
    }

    fn bar(&mut self, layer: &str, total: u64) -> &indicatif::ProgressBar {
        let multi = &self.multi;
        self.layers.entry(layer.to_string()).or_insert_with(|| {
            let bar = multi.add(indicatif::ProgressBar::new(total));
            let style = indicatif::ProgressStyle::with_template(
                "{prefix}: [{bar:30}] {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(short(layer));
            bar
        })
    }

    fn println(&self, msg: &str) {
        let _ = self.multi.println(msg);
    }
}

/// Pulls with progress: per-layer progress bars when stdout is a terminal, one line per
/// event (layer progress at most every second) when it is not.
pub async fn pull(client: &Client, ns: &str, as_json: bool, a: &PullArgs) -> anyhow::Result<i32> {
    if let Some(p) = &a.platform {
        crate::storage::check_platform(p)?;
    }
    let req = PullImageRequest {
        reference: a.reference.clone(),
        platform: a.platform.clone(),
        auth: None,
    };
    let mut lines = client.pull_image_stream(ns, &req).await?;
    let chatty = !as_json && !a.quiet;
    let mut bars = (chatty && std::io::stdout().is_terminal()).then(Bars::new);
    let mut last_shown: BTreeMap<String, Instant> = BTreeMap::new();
    let say = |bars: &Option<Bars>, msg: &str| match bars {
        Some(b) => b.println(msg),
        None => println!("{msg}"),
    };
    while let Some(line) = lines.next_line().await {
        let line = line?;
        let v: serde_json::Value = serde_json::from_slice(&line)
            .with_context(|| format!("bad progress line {:?}", String::from_utf8_lossy(&line)))?;
        if let Some(err) = v.get("error") {
            if let Some(b) = &bars {
                let _ = b.multi.clear();
            }
            bail!(
                "{}: {}",
                err["kind"].as_str().unwrap_or("Error"),
                err["message"].as_str().unwrap_or("the pull failed")
            );
        }
        if let Some(layer) = v.get("layer").and_then(|l| l.as_str()) {
            if !chatty {
                continue;
            }
            let status = v.get("status").and_then(|s| s.as_str());
            if status == Some("layer_done") {
                let n = v["size"].as_u64().unwrap_or(0);
                match &mut bars {
                    Some(b) => {
                        let bar = b.bar(layer, n);
                        bar.set_length(n);
                        bar.set_position(n);
                        bar.finish_with_message("done");
                    }
                    None => println!("{}: done ({})", short(layer), size(n)),
                }
                continue;
            }
            let (current, total) = (
                v["current"].as_u64().unwrap_or(0),
                v["total"].as_u64().unwrap_or(0),
            );
            match &mut bars {
                Some(b) => {
                    let bar = b.bar(layer, total);
                    bar.set_length(total);
                    bar.set_position(current);
                }
                None => {
                    let now = Instant::now();
                    let due = last_shown
                        .get(layer)
                        .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(1));
                    if due {
                        last_shown.insert(layer.to_string(), now);
                        println!(
                            "{}: downloading {} / {}",
                            short(layer),
                            size(current),
                            size(total)
                        );
                    }
                }
            }
            continue;
        }
        match v.get("status").and_then(|s| s.as_str()) {
            Some("completed") => {
                let r: PullImageResponse = serde_json::from_value(v.clone())?;
                if bars.take().is_some_and(|b| !b.layers.is_empty()) {
                    // The bars leave the cursor at the end of their last line.
                    println!();
                }
                if as_json {
                    json(&r)?;
                } else if a.quiet {
                    println!("{}", r.image);
                } else {
                    println!("{} {}", r.image, r.digest);
                }
                return Ok(0);
            }
            Some("resolved") if chatty => say(
                &bars,
                &format!(
                    "{}: resolved {}",
                    a.reference,
                    v["digest"].as_str().unwrap_or("")
                ),
            ),
            Some("unpacking") if chatty => say(&bars, "unpacking"),
            _ => {}
        }
    }
    bail!("the daemon ended the pull without an outcome")
}

/// `berth push NAME [TARGET]`.
pub async fn push(client: &Client, ns: &str, as_json: bool, a: &PushArgs) -> anyhow::Result<i32> {
    let r = client
        .push_image(
            ns,
            &a.name,
            &PushImageRequest {
                target: a.target.clone(),
                auth: None,
            },
        )
        .await?;
    if as_json {
        json(&r)?;
    } else {
        println!("{} {}", r.target, r.digest);
    }
    Ok(0)
}

/// `berth login REGISTRY -u USER --password-stdin`: stores the credentials in the
/// docker-compatible file berthd reads (nothing is sent to the registry here: a wrong
/// password shows as a 401 at the first pull or push).
pub fn login(as_json: bool, a: &LoginArgs) -> anyhow::Result<i32> {
    if !a.password_stdin {
        bail!("give the password on standard input with --password-stdin");
    }
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("the password on standard input is empty");
    }
    let creds = berth_engine::registry::Credentials::basic(a.username.clone(), password);
    berth_engine::registry::docker_config::store(&a.credentials_file, &a.registry, &creds)
        .with_context(|| format!("writing {}", a.credentials_file.display()))?;
    if as_json {
        json(&serde_json::json!({"registry": a.registry, "credentials_file": a.credentials_file}))?;
    } else {
        println!(
            "Login stored for {} in {}",
            a.registry,
            a.credentials_file.display()
        );
    }
    Ok(0)
}
