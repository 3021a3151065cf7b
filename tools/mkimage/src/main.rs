//! `berth-mkimage busybox|layers|multiarch --out PATH [--format …] [--name REF]`:
//! writes a deterministic test image and prints its digests as JSON.

use std::path::PathBuf;

use anyhow::Result;
use berth_mkimage::{assemble, Format, ImageKind, Options};
use clap::Parser;

/// Builds berth's deterministic test images from Debian's busybox-static.
#[derive(Parser)]
#[command(name = "berth-mkimage", version)]
struct Args {
    /// Which image.
    #[arg(value_enum)]
    kind: ImageKind,
    /// Where to write it (a directory for oci-dir, a file otherwise).
    #[arg(long)]
    out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "oci-dir")]
    format: Format,
    /// Image reference `repo[:tag]` (default `berth.test/<kind>:latest`).
    #[arg(long)]
    name: Option<String>,
    /// The busybox binary to put in the image.
    #[arg(long, env = "BERTH_BUSYBOX", default_value = "/bin/busybox")]
    busybox: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let opts = Options {
        busybox: args.busybox,
        ..Options::default()
    };
    let name = args
        .name
        .unwrap_or_else(|| args.kind.default_name().to_string());
    let built = assemble(args.kind, &opts)?.write(&args.out, args.format, &name)?;
    println!("{}", serde_json::to_string_pretty(&built)?);
    Ok(())
}
