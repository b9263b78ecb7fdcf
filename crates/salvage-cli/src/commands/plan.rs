//! `salvage plan`: show what a restore would do (and write it to a plan file for review);
//! `plan --show FILE` shows a plan file again. Reads only.

use std::time::SystemTime;

use crate::args::{Format, PlanArgs};
use crate::failure::{Failure, OrBadInput, SUCCESS};
use crate::planfile::PlanFile;
use crate::prepare::Purpose;
use crate::progress::Display;
use crate::settings::{Extra, Settings};
use crate::{output, render, report};

pub async fn run(args: &PlanArgs) -> Result<u8, Failure> {
    if let Some(path) = &args.show {
        return show(args, path);
    }
    let settings = Settings::resolve(
        &args.common,
        &Extra {
            mode: args.mode.map(Into::into),
            ..Extra::default()
        },
    )?;
    // JSON goes to stdout untouched by spinners.
    let display = if args.format == Format::Json {
        Display::Lines
    } else {
        Display::detect()
    };
    let prepared = super::prepare_shown(&settings, display, &Purpose::Plan).await?;
    let document = report::plan_document(&prepared);
    match args.format {
        Format::Text => output::print(&render::plan_of(&document, None)),
        Format::Json => {
            let json = output::json(&document).map_err(Failure::failed)?;
            println!("{json}");
        }
    }
    if let Some(path) = &args.out {
        let file = PlanFile::new(
            prepared.inputs.clone(),
            document,
            report::rfc3339(SystemTime::now()),
        );
        file.write(path).map_err(Failure::failed)?;
        let message = format!(
            "Plan written to {} (digest {}): review it with salvage plan --show {0}, apply it with salvage restore --plan {0}.",
            path.display(),
            &file.digest[..16]
        );
        if args.format == Format::Json {
            eprintln!("{message}");
        } else {
            println!("\n{message}");
        }
    }
    Ok(SUCCESS)
}

/// Prints a plan file's plan as `plan` would have, and what it was made against.
fn show(args: &PlanArgs, path: &std::path::Path) -> Result<u8, Failure> {
    let file = PlanFile::read(path).bad_input()?;
    match args.format {
        Format::Json => println!("{}", output::json(&file).map_err(Failure::failed)?),
        Format::Text => {
            println!(
                "Plan file {} (format {}, salvage {}), made {} by {} on {}; digest {}.",
                path.display(),
                file.format_version,
                file.salvage_version,
                file.created_at,
                file.created_by.os_user.as_deref().unwrap_or("?"),
                file.created_by.host,
                file.digest
            );
            println!(
                "Mode {}: rows live is missing are added; nothing is updated or deleted.\n",
                file.inputs.mode
            );
            output::print(&render::plan_of(&file.plan, None));
        }
    }
    Ok(SUCCESS)
}
