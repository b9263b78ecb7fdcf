//! Database URLs as users give them, and as we may show them: never with a password.

use std::fmt;

/// A `postgres://` or `postgresql://` URL. `Display` and `Debug` show it redacted; only
/// [`DatabaseUrl::secret`] hands out the original, to the driver.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    redacted: String,
}

impl DatabaseUrl {
    /// Recognises `raw` as a PostgreSQL URL; `None` for anything else (a file path, say).
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        let lower = raw.get(..13).unwrap_or(raw).to_ascii_lowercase();
        if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
            return None;
        }
        Some(Self {
            raw: raw.to_owned(),
            redacted: redact(raw),
        })
    }

    /// The URL with its password, for the driver only. Never print it.
    #[must_use]
    pub fn secret(&self) -> &str {
        &self.raw
    }

    /// The URL without any password: safe for messages, logs and reports.
    #[must_use]
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

/// Parses with the same URL parser the driver uses, so whatever the driver would take as a
/// password is what gets hidden: the userinfo password and `password` / `sslpassword`
/// query parameters. A URL that does not parse is not shown at all.
fn redact(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        let scheme = raw.split("://").next().unwrap_or("postgres");
        return format!("{scheme}://(a URL that does not parse)");
    };
    if url.password().is_some() {
        // Setting a password only fails for URLs that cannot have one, which this one has.
        let _ = url.set_password(Some("***"));
    }
    let secret_keys = ["password", "sslpassword"];
    if url
        .query_pairs()
        .any(|(key, _)| secret_keys.iter().any(|s| key.eq_ignore_ascii_case(s)))
    {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if secret_keys.iter().any(|s| key.eq_ignore_ascii_case(s)) {
                    "***".to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted)
    }
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    fn redacted(raw: &str) -> String {
        DatabaseUrl::parse(raw)
            .expect("a postgres URL")
            .redacted()
            .to_owned()
    }

    #[test]
    fn hides_the_password_in_userinfo() {
        assert_eq!(
            redacted("postgres://alice:s3cret@db:5432/app"),
            "postgres://alice:***@db:5432/app"
        );
        assert_eq!(
            redacted("postgresql://alice:p%40ss%2Fw@db/app"),
            "postgresql://alice:***@db/app"
        );
        assert_eq!(
            redacted("postgres://alice@db/app"),
            "postgres://alice@db/app"
        );
        assert_eq!(redacted("postgres://db/app"), "postgres://db/app");
    }

    #[test]
    fn hides_password_query_parameters() {
        let shown =
            redacted("postgres://db/app?sslmode=require&password=x1&PASSWORD=y2&sslpassword=z3");
        assert!(shown.contains("sslmode=require"), "{shown}");
        for secret in ["x1", "y2", "z3"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let url = DatabaseUrl::parse("postgres://u:hunter2@h/d").expect("a postgres URL");
        assert!(!format!("{url} {url:?}").contains("hunter2"));
        assert_eq!(url.secret(), "postgres://u:hunter2@h/d");
    }

    #[test]
    fn unparseable_urls_are_not_echoed() {
        let url = DatabaseUrl::parse("postgres://u:hunter2@[bad/d").expect("a postgres URL");
        assert!(!url.redacted().contains("hunter2"), "{}", url.redacted());
    }

    #[test]
    fn other_strings_are_not_urls() {
        assert!(DatabaseUrl::parse("/backups/nightly.dump").is_none());
        assert!(DatabaseUrl::parse("mysql://h/d").is_none());
    }
}
