//! `salvage completions SHELL` and `salvage man`: generated from the same clap definition
//! the parser uses, so they never disagree with it.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::args::Cli;
use crate::failure::{Failure, SUCCESS};

/// Prints the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<u8, Failure> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "salvage", &mut out);
    std::io::stdout().write_all(&out).map_err(Failure::failed)?;
    Ok(SUCCESS)
}

/// Prints salvage(1) (roff) to stdout, or writes a page per command into `dir`.
pub fn man(dir: Option<&Path>) -> Result<u8, Failure> {
    let command = Cli::command();
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(command, dir))
            .with_context(|| format!("write the manual pages into {}", dir.display()))
            .map_err(Failure::bad_input)?;
        println!("Manual pages written to {}.", dir.display());
    } else {
        let mut out = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut out)
            .map_err(Failure::failed)?;
        std::io::stdout().write_all(&out).map_err(Failure::failed)?;
    }
    Ok(SUCCESS)
}
