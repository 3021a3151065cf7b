//! `berthd`: parses its flags and configuration, then runs the daemon.

mod config;
mod daemon;

use clap::Parser;

fn main() {
    let flags = config::Flags::parse();
    let config = match config::Config::load(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            std::process::exit(2);
        }
    };
    if let Err(e) = daemon::run(config) {
        // One readable line; details were logged.
        eprintln!("berthd: {e:#}");
        std::process::exit(1);
    }
}
