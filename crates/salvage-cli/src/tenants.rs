//! The tenant list as given: `--tenants 3,7,11`, a tenants file (one per line, `#` comments,
//! a leading byte order mark ignored), or salvage.toml's list — each value with where it came
//! from, so a bad one is named with its line.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// A value of the tenant list and where it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenTenant {
    pub value: String,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--tenants` or salvage.toml's `tenants`.
    List,
    /// Line `line` (from 1) of a tenants file.
    Line { file: PathBuf, line: usize },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::List => Ok(()),
            Self::Line { file, line } => write!(f, "{} line {line}", file.display()),
        }
    }
}

/// `3, 7,11` → `3`, `7`, `11`.
pub fn parse_list<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<GivenTenant> {
    values
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(|value| GivenTenant {
            value: value.to_owned(),
            origin: Origin::List,
        })
        .collect()
}

/// One value per line; `#` starts a comment; blank lines are skipped; a byte order mark at
/// the start is not part of the first value.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<GivenTenant>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read the tenants file {}", path.display()))?;
    Ok(parse_file_text(&text, path))
}

fn parse_file_text(text: &str, path: &Path) -> Vec<GivenTenant> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .enumerate()
        .filter_map(|(number, line)| {
            let value = line.split('#').next().unwrap_or("").trim();
            (!value.is_empty()).then(|| GivenTenant {
                value: value.to_owned(),
                origin: Origin::Line {
                    file: path.to_owned(),
                    line: number + 1,
                },
            })
        })
        .collect()
}

/// `'abc'`, or `'abc' (ids.txt line 3)`, for messages.
pub fn describe(given: &[GivenTenant], value: &str) -> String {
    match given.iter().find(|tenant| tenant.value == value) {
        Some(GivenTenant {
            origin: origin @ Origin::Line { .. },
            ..
        }) => format!("'{value}' ({origin})"),
        _ => format!("'{value}'"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Origin, parse_file_text, parse_list};

    #[test]
    fn parses_lists() {
        let values: Vec<String> = parse_list([" 3, 7,,11 "])
            .into_iter()
            .map(|tenant| tenant.value)
            .collect();
        assert_eq!(values, ["3", "7", "11"]);
    }

    #[test]
    fn files_keep_line_numbers_and_lose_their_byte_order_mark() {
        let path = Path::new("ids.txt");
        let tenants = parse_file_text("\u{feff}3\r\n# a comment\n\n 7 # seven\n", path);
        let values: Vec<(&str, &Origin)> = tenants
            .iter()
            .map(|tenant| (tenant.value.as_str(), &tenant.origin))
            .collect();
        assert_eq!(
            values,
            [
                (
                    "3",
                    &Origin::Line {
                        file: path.into(),
                        line: 1
                    }
                ),
                (
                    "7",
                    &Origin::Line {
                        file: path.into(),
                        line: 4
                    }
                )
            ]
        );
        assert_eq!(super::describe(&tenants, "7"), "'7' (ids.txt line 4)");
    }
}
