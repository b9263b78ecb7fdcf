//! `salvage inspect SRC`: what a pg_dump archive holds, without restoring it.

use std::fmt::Write as _;

use salvage_archive::Encoding;
use salvage_archive::inspect::{InspectOptions, Inspection};

use crate::args::{Format, InspectArgs};
use crate::failure::{Failure, OrBadInput, SUCCESS};
use crate::output;
use crate::table::{Align, TextTable};

pub async fn run(args: &InspectArgs) -> Result<u8, Failure> {
    let shown = args.source.to_string();
    let source = args.source.expose().to_owned();
    if salvage_pg::conninfo::is_connection_string(&source) {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "`{shown}` is a database, not a dump: inspect reads pg_dump archives (plan reads a snapshot database)"
        )));
    }
    if source != "-" && !std::path::Path::new(&source).exists() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "`{shown}`: no such file or directory"
        )));
    }
    let count_rows = !args.no_count;
    // Reading an archive is blocking file work: off the async runtime.
    let inspection = tokio::task::spawn_blocking(move || -> salvage_archive::Result<Inspection> {
        if source == "-" {
            return salvage_archive::inspect::inspect_stream("<stdin>", std::io::stdin());
        }
        let archive = salvage_archive::Archive::open(&source)?;
        Ok(salvage_archive::inspect::inspect(
            &archive,
            InspectOptions { count_rows },
        ))
    })
    .await
    .map_err(Failure::failed)?
    .bad_input()?;
    if inspection.format == salvage_archive::Format::Plain && inspection.toc_entries == 0 {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "{} is not a pg_dump archive: it has no custom, directory or tar header, and none of the SQL a plain dump holds",
            inspection.path.display()
        )));
    }
    match args.format {
        Format::Json => {
            let mut json = serde_json::to_value(&inspection).map_err(Failure::failed)?;
            if let Some(time) = &inspection.dump_time {
                json["dump_time"] = serde_json::Value::String(iso_time(time));
                json["dump_time_zone"] = serde_json::Value::String(
                    "local time of the machine pg_dump ran on; the archive does not record its zone"
                        .to_owned(),
                );
            }
            let json = output::json(&json).map_err(Failure::failed)?;
            println!("{json}");
        }
        Format::Text => output::print(&render(&inspection)),
    }
    let unreadable = inspection
        .tables
        .iter()
        .filter(|table| table.error.is_some())
        .count();
    if unreadable > 0 || inspection.schema_error.is_some() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "{}: {} could not be read{}",
            inspection.path.display(),
            output::counted(unreadable as u64, "table"),
            inspection
                .schema_error
                .as_ref()
                .map(|error| format!("; schema: {error}"))
                .unwrap_or_default()
        )));
    }
    Ok(SUCCESS)
}

fn render(inspection: &Inspection) -> String {
    let mut out = String::new();
    let known = |value: Option<&str>| value.unwrap_or("unknown").to_owned();
    let _ = writeln!(out, "archive     {}", inspection.path.display());
    let _ = writeln!(
        out,
        "format      {}{}",
        inspection.format,
        inspection
            .archive_version
            .as_ref()
            .map(|version| format!(" (archive version {version})"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "compression {}", inspection.compression);
    let _ = writeln!(
        out,
        "pg_dump     {}",
        known(inspection.pg_dump_version.as_deref())
    );
    let _ = writeln!(
        out,
        "server      {}",
        known(inspection.server_version.as_deref())
    );
    if let Some(database) = &inspection.database {
        let _ = writeln!(out, "database    {database}");
    }
    if let Some(time) = &inspection.dump_time {
        let _ = writeln!(
            out,
            "dumped at   {} local time where pg_dump ran{} (the archive records no time zone)",
            iso_time(time).replace('T', " "),
            if time.is_dst {
                ", daylight saving time"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(out, "encoding    {}", encoding(inspection.encoding));
    let _ = writeln!(
        out,
        "toc entries {}",
        output::number(inspection.toc_entries as u64)
    );
    let _ = writeln!(
        out,
        "\nTables ({}):",
        output::number(inspection.tables.len() as u64)
    );
    let mut tables = TextTable::new(&[
        ("TABLE", Align::Left),
        ("COLUMNS", Align::Right),
        ("ROWS", Align::Right),
        ("TEXT BYTES", Align::Right),
        ("STORED BYTES", Align::Right),
        ("NOTE", Align::Left),
    ]);
    let number = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), output::number);
    for table in &inspection.tables {
        let note = match (&table.error, table.copy) {
            (Some(error), _) => error.clone(),
            (None, false) => "INSERT statements (not readable by salvage)".to_owned(),
            (None, true) => String::new(),
        };
        tables.row(vec![
            table.name.to_string(),
            table.columns.to_string(),
            number(table.rows),
            number(table.text_bytes),
            number(table.stored_bytes),
            note,
        ]);
    }
    out.push_str(&tables.render(2));
    let _ = writeln!(
        out,
        "\nForeign keys ({}):",
        output::number(inspection.foreign_keys.len() as u64)
    );
    for edge in &inspection.foreign_keys {
        let _ = writeln!(
            out,
            "  {}({}) → {}({}){}",
            edge.from,
            edge.columns.join(", "),
            edge.to,
            edge.referenced_columns.join(", "),
            if edge.deferrable { " deferrable" } else { "" }
        );
    }
    if let Some(error) = &inspection.schema_error {
        let _ = writeln!(out, "\nThe schema could not be read: {error}");
    }
    out
}

/// The dump's encoding and what salvage does with it.
fn encoding(encoding: Option<Encoding>) -> String {
    match encoding {
        Some(Encoding::Utf8) => "UTF8".to_owned(),
        Some(Encoding::Latin1) => "LATIN1 (transcoded to UTF-8 as it is read)".to_owned(),
        Some(Encoding::SqlAscii) => {
            "SQL_ASCII (bytes passed through; a UTF-8 target refuses those that are not UTF-8)"
                .to_owned()
        }
        None => "not stated (read as UTF-8)".to_owned(),
    }
}

/// `2026-11-19T14:02:07`: ISO 8601, a local time (the archive records no offset).
fn iso_time(time: &salvage_archive::DumpTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        time.year, time.month, time.day, time.hour, time.minute, time.second
    )
}
