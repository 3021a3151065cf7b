//! `berth-shim`: one per running container, launched by `berthd`.
//!
//! ```text
//! berth-shim start <bundle>   spawn the shim for <bundle>/shim.json, wait until it is
//!                             ready, print its readiness as one JSON line and exit
//! berth-shim serve <bundle>   the shim itself (spawned by `start`)
//! ```
//!
//! Everything is in `berth_engine::shim`; this only parses the arguments.

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: berth-shim start|serve <bundle>";

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let (command, bundle) = match args.as_slice() {
        [command, bundle] => (command.to_string_lossy(), Path::new(bundle)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command.as_ref() {
        "start" => berth_engine::shim::start(bundle, &mut std::io::stdout()).map(drop),
        "serve" => berth_engine::shim::serve(bundle),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-shim {command}: {e}");
            ExitCode::FAILURE
        }
    }
}
