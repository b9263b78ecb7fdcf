//! salvage.toml: the same settings as the flags, plus what flags can't say well — relations
//! the schema does not declare, tables to exclude, tables to treat as shared.
//!
//! ```toml
//! snapshot = "postgres://backup-host/app"
//! target = "postgres://live-host/app"
//! root = "public.sites"
//! tenant_columns = ["site_id"]
//! jobs = 8
//! exclude = ["public.audit_log"]
//! shared = ["public.users"]
//!
//! [[relations]]
//! from = "public.attachments(owner_id)"
//! to = "public.issues(id)"
//! when = "owner_type = 'issue'"
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use salvage_catalog::QualifiedName;
use salvage_pg::{Redacted, SecretText};
use salvage_plan::{Condition, ConfiguredRelation};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, deserialize_with = "secret")]
    pub snapshot: Option<SecretText>,
    #[serde(default, deserialize_with = "secret")]
    pub target: Option<SecretText>,
    pub root: Option<String>,
    pub tenants: Option<Vec<String>>,
    pub tenants_file: Option<PathBuf>,
    pub tenants_by: Option<String>,
    #[serde(default)]
    pub tenant_columns: Vec<String>,
    pub jobs: Option<usize>,
    pub lock_timeout: Option<String>,
    pub statement_timeout: Option<String>,
    pub key_memory: Option<String>,
    #[serde(default)]
    pub relations: Vec<RelationConfig>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub shared: Vec<String>,
    /// `missing`, `overwrite` or `exact`.
    pub mode: Option<salvage_plan::Mode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelationConfig {
    /// `schema.table(column, ...)`, the referencing side.
    pub from: String,
    /// `schema.table(column, ...)`, the referenced side.
    pub to: String,
    /// `column = 'value'`: only rows where it holds follow the relation.
    pub when: Option<String>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read the configuration {}", path.display()))?;
        let mut config: Self =
            toml::from_str(&text).map_err(|error| parse_error(path, &text, &error))?;
        // A tenants file named in the configuration is relative to the configuration.
        if let (Some(file), Some(dir)) = (&config.tenants_file, path.parent()) {
            if file.is_relative() {
                config.tenants_file = Some(dir.join(file));
            }
        }
        Ok(config)
    }

    pub fn relations(&self) -> Result<Vec<ConfiguredRelation>> {
        self.relations.iter().map(RelationConfig::parse).collect()
    }
}

/// Connection strings are held redacted from the moment they are read.
fn secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretText>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.map(SecretText::new))
}

/// `salvage.toml line 3, column 1: unknown field …`: where and what, without quoting the line
/// (it may hold a password), and redacted in case the message quotes a value.
fn parse_error(path: &Path, text: &str, error: &toml::de::Error) -> anyhow::Error {
    let place = error.span().map_or_else(String::new, |span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |newline| newline + 1) + 1;
        format!(" line {line}, column {column}")
    });
    anyhow!(
        "{}{place}: {}",
        path.display(),
        Redacted(error.message().trim_end())
    )
}

impl RelationConfig {
    fn parse(&self) -> Result<ConfiguredRelation> {
        let (child, child_columns) = table_with_columns(&self.from)?;
        let (parent, parent_columns) = table_with_columns(&self.to)?;
        let condition = self.when.as_deref().map(parse_condition).transpose()?;
        Ok(ConfiguredRelation {
            child,
            child_columns,
            parent,
            parent_columns,
            condition,
        })
    }
}

/// `public.attachments(owner_id, owner_kind)`.
fn table_with_columns(text: &str) -> Result<(QualifiedName, Vec<String>)> {
    let text = text.trim();
    let (table, rest) = text.split_once('(').ok_or_else(|| {
        anyhow!("relation side `{text}` should look like `schema.table(column, ...)`")
    })?;
    let columns = rest
        .strip_suffix(')')
        .ok_or_else(|| anyhow!("relation side `{text}` should end with `)`"))?;
    let columns: Vec<String> = columns
        .split(',')
        .map(|column| column.trim().to_owned())
        .collect();
    if columns.iter().any(String::is_empty) {
        bail!("relation side `{text}` has an empty column name");
    }
    Ok((QualifiedName::parse(table)?, columns))
}

/// `owner_type = 'issue'` (the value in single quotes, `''` for a quote).
fn parse_condition(text: &str) -> Result<Condition> {
    let bad = || anyhow!("condition `{text}` should look like `column = 'value'`");
    let (column, value) = text.split_once('=').ok_or_else(bad)?;
    let column = column.trim();
    let value = value.trim();
    let inner = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .ok_or_else(bad)?;
    if column.is_empty() || inner.replace("''", "").contains('\'') {
        return Err(bad());
    }
    Ok(Condition {
        column: column.to_owned(),
        value: inner.replace("''", "'"),
    })
}

#[cfg(test)]
mod tests {
    use super::{Config, parse_condition, table_with_columns};

    #[test]
    fn parses_a_full_configuration() {
        let config: Config = toml::from_str(
            r#"
            snapshot = "postgres://snap/app"
            root = "public.sites"
            tenant_columns = ["site_id"]
            jobs = 8
            exclude = ["public.audit_log"]
            [[relations]]
            from = "public.attachments(owner_id)"
            to = "public.issues(id)"
            when = "owner_type = 'issue'"
            "#,
        )
        .unwrap();
        let relations = config.relations().unwrap();
        assert_eq!(relations[0].child.name, "attachments");
        assert_eq!(relations[0].parent_columns, ["id"]);
        assert_eq!(relations[0].condition.as_ref().unwrap().value, "issue");
        assert_eq!(config.jobs, Some(8));
    }

    #[test]
    fn rejects_unknown_keys() {
        assert!(toml::from_str::<Config>("snapshots = 'x'").is_err());
    }

    #[test]
    fn parse_errors_say_where_without_quoting_the_line() {
        let text = "root = \"public.sites\"\ntarget = \"postgres://u:hunter2@h/d\" x\n";
        let error = toml::from_str::<Config>(text).unwrap_err();
        let message = super::parse_error(std::path::Path::new("s.toml"), text, &error).to_string();
        assert!(message.starts_with("s.toml line 2, column "), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn parses_relation_sides_and_conditions() {
        let (table, columns) = table_with_columns("app.links(a, b)").unwrap();
        assert_eq!(
            (table.schema.as_str(), columns),
            ("app", vec!["a".to_owned(), "b".to_owned()])
        );
        assert!(table_with_columns("links").is_err());
        assert_eq!(parse_condition("kind = 'it''s'").unwrap().value, "it's");
        assert!(parse_condition("kind = issue").is_err());
    }
}
