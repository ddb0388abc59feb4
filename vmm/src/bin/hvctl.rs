// SPDX-License-Identifier: GPL-2.0

//! `hvctl PATH REQUEST...`: sends one request to a running hvhost's control
//! socket (`--api-socket PATH`) and prints the answer. Exits 0 when the
//! answer is `ok`, 1 when it is an error, 2 when hvhost cannot be reached.

#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, request @ ..] = args.as_slice() else {
        eprintln!("usage: hvctl SOCKET REQUEST...   (devices, add NAME, remove NAME|RELID, shutdown, stats, serial, ...)");
        return ExitCode::from(2);
    };
    if request.is_empty() {
        eprintln!("hvctl: no request");
        return ExitCode::from(2);
    }
    match hvhost::api::call(Path::new(path), &request.join(" ")) {
        Ok(answer) => {
            print!("{answer}");
            if answer.starts_with("ok") {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("hvctl: {path}: {e}");
            ExitCode::from(2)
        }
    }
}
