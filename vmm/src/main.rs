// SPDX-License-Identifier: GPL-2.0

//! The `hvhost` binary: parse the command line, log to stderr, run the VM, and exit with a
//! status that says how the guest ended: 0 power-off, 2 reset or reboot, 1 failure
//! (triple fault, KVM or host error), 128+N a signal (`VmExitReason::exit_code`).

#![forbid(unsafe_code)]

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
            } else if reason == hvhost::control::VmExitReason::Reset {
                log::warn!("{reason}");
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
