// SPDX-License-Identifier: GPL-2.0

//! The `hvhost` binary: parse the command line, log to stderr, run the VM, and exit 0 when
//! the guest powered off or reset, non-zero otherwise.

use std::process::ExitCode;

use clap::Parser;
use hvhost::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    hvhost::logger::init(cli.log_level.into());
    match hvhost::run(&cli.vm_config()) {
        Ok(reason) => {
            if reason.is_clean() {
                log::info!("{reason}");
            } else {
                log::error!("{reason}");
            }
            ExitCode::from(reason.exit_code())
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
