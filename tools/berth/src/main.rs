//! `berth`: the command-line client of berthd. Tables for people, `--json` for scripts;
//! on error, a non-zero exit and one readable line.

mod cmd;
mod output;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = cmd::Cli::parse();
    match cmd::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("berth: {}", msg.lines().next().unwrap_or("error"));
            std::process::exit(1);
        }
    }
}
