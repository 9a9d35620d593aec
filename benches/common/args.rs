//! The bench binaries' command line: each declares its flags as a `#[derive(clap::Parser)]`
//! struct and reads them with [`parse`]; [`Repeat`] is the `--runs` flag several share.
//! Included with `#[path = "common/args.rs"] mod args;` (not a bench target itself).

/// Parses this process's arguments into `T`, minus the `--bench` flag that `cargo bench`
/// passes to `harness = false` targets (wherever it stands).
pub fn parse<T: clap::Parser>() -> T {
    T::parse_from(std::env::args_os().filter(|a| a != "--bench"))
}

/// How many times each measurement runs (flatten it into a bench's `Args`).
#[derive(clap::Args)]
#[allow(dead_code, reason = "pages and search include this module but take no --runs")]
pub struct Repeat {
    /// Runs of each measurement; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}
