//! `berth`: the command-line client of berthd. Tables for people, `--json` for scripts;
//! on error, a non-zero exit and one readable line.

mod cmd;
mod containers;
mod networks;
mod output;
mod registry;
mod storage;

use clap::Parser;

/// Output piped into `head` and the like: die quietly of SIGPIPE as other CLIs do,
/// instead of panicking on a failed print.
#[allow(unsafe_code)]
fn default_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: restoring the default disposition installs no Rust handler; nothing else
    // in this single-threaded start-up touches signals.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    default_sigpipe();
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

/// Helpers of the command modules' unit tests.
#[cfg(test)]
mod test_support {
    /// Parses `args` (what follows `berth`) as a subcommand of type `C`.
    pub(crate) fn try_parse<C: clap::Subcommand>(args: &[&str]) -> Result<C, clap::Error> {
        let cmd = C::augment_subcommands(clap::Command::new("berth").subcommand_required(true));
        let m = cmd.try_get_matches_from(std::iter::once("berth").chain(args.iter().copied()))?;
        C::from_arg_matches(&m)
    }

    /// As [`try_parse`], for arguments that must parse.
    pub(crate) fn parse<C: clap::Subcommand>(args: &[&str]) -> C {
        try_parse(args).expect("the arguments parse")
    }
}
