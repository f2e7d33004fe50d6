//! `slipway-local-cloud --dir DIR`: the local cloud's process, started by the
//! dev coordinator (`slipway-coordinator --dev`) so that it outlives it, as AWS
//! outlives a coordinator. Stopped by `slipway-coordinator down`.

#![forbid(unsafe_code)]

mod image;
mod proxy;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "slipway-local-cloud",
    version,
    about = "The local cloud: instances, load balancers and records on one machine"
)]
struct Args {
    /// Where its socket, images and instances live (the coordinator's DATA_DIR/cloud).
    #[arg(long)]
    dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = slipway_common::logging::init(None) {
        eprintln!("slipway-local-cloud: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("slipway-local-cloud: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(&args.dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slipway-local-cloud: {e:#}");
            ExitCode::FAILURE
        }
    }
}
