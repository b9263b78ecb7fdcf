//! `salvage plan`: show what a restore would do. Reads only.

use crate::args::{Format, PlanArgs};
use crate::failure::{Failure, SUCCESS};
use crate::prepare::Purpose;
use crate::progress::Display;
use crate::settings::{Extra, Settings};
use crate::{output, render, report};

pub async fn run(args: &PlanArgs) -> Result<u8, Failure> {
    let settings = Settings::resolve(&args.common, &Extra::default())?;
    // JSON goes to stdout untouched by spinners.
    let display = if args.format == Format::Json {
        Display::Lines
    } else {
        Display::detect()
    };
    let prepared = super::prepare_shown(&settings, display, &Purpose::Plan).await?;
    match args.format {
        Format::Text => output::print(&render::plan(&prepared, None)),
        Format::Json => {
            let json = output::json(&report::plan_json(&prepared)).map_err(Failure::failed)?;
            println!("{json}");
        }
    }
    Ok(SUCCESS)
}
