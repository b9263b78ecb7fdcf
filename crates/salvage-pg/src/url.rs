//! Where a database is, as users give it — a `postgres://` URI, a libpq `key=value` string, a
//! service, or the `PG*` environment (see `conninfo`) — and as we may show it: never with a
//! password.

use std::fmt;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::conninfo::{self, ConnInfoError, Environment, Params, ProcessEnvironment};
use crate::redact::redact;

/// A database to connect to: its parameters, resolved as libpq resolves them. `Display` and
/// `Debug` show it redacted; only the connection code reads the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    params: Params,
    shown: String,
}

/// One host of a connection's host list, with everything needed to try it.
#[derive(Debug)]
pub(crate) struct Candidate {
    pub options: PgConnectOptions,
    /// `host:port`, for messages.
    pub address: String,
}

/// What a session must be for a host to be taken (libpq's `target_session_attrs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionAttributes {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
}

impl DatabaseUrl {
    /// Recognises `raw` as a connection string and resolves it; `None` for anything else (a
    /// file path, say) or a string that [`DatabaseUrl::resolve`] refuses.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        if !conninfo::is_connection_string(raw) {
            return None;
        }
        Self::resolve(raw).ok()
    }

    /// Resolves a `postgres://` URI or a `key=value` string, filling what it leaves unset from
    /// its service and the `PG*` environment as libpq does. The error names the parameter,
    /// never a value.
    pub fn resolve(raw: &str) -> Result<Self, ConnInfoError> {
        Self::resolve_in(raw, &ProcessEnvironment)
    }

    /// The database the `PG*` environment (and `PGSERVICE`) names, as psql would connect.
    pub fn from_environment() -> Result<Self, ConnInfoError> {
        let mut url = Self::resolve_in("", &ProcessEnvironment)?;
        url.shown = format!("{} (from the PG* environment)", url.canonical());
        Ok(url)
    }

    fn resolve_in(raw: &str, environment: &dyn Environment) -> Result<Self, ConnInfoError> {
        let params = conninfo::resolve(raw, environment)?;
        let url = Self {
            shown: redact(raw.trim()).into_owned(),
            params,
        };
        url.hosts()?;
        Ok(url)
    }

    /// The connection string as given, without any password: safe for messages, logs and
    /// reports.
    #[must_use]
    pub fn redacted(&self) -> &str {
        &self.shown
    }

    /// The resolved parameters as a libpq `key=value` string, without the password: where
    /// to connect again, the password coming from the environment or `~/.pgpass`.
    #[must_use]
    pub fn without_password(&self) -> String {
        self.params
            .iter()
            .filter(|(key, _)| key.as_str() != "password")
            .map(|(key, value)| {
                format!(
                    "{key}='{}'",
                    value.replace('\\', "\\\\").replace('\'', "\\'")
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether `other` names the same database on the same server (host, port and database
    /// name, as resolved), whatever else differs (a password, options).
    #[must_use]
    pub fn same_database(&self, other: &Self) -> bool {
        ["host", "hostaddr", "port", "dbname"]
            .iter()
            .all(|key| self.params.get(*key) == other.params.get(*key))
    }

    /// The role to connect as, when the string or the environment names one.
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        self.params.get("user").map(String::as_str)
    }

    /// The database to connect to, when named (libpq then uses the user's name).
    #[must_use]
    pub fn dbname(&self) -> Option<&str> {
        self.params.get("dbname").map(String::as_str)
    }

    /// `postgres://user@host:port/dbname` from the resolved parameters (no password).
    fn canonical(&self) -> String {
        let get = |key: &str| self.params.get(key).map(String::as_str);
        let user = get("user")
            .map(|user| format!("{user}@"))
            .unwrap_or_default();
        let host = get("host").or(get("hostaddr")).unwrap_or("");
        let port = get("port")
            .map(|port| format!(":{port}"))
            .unwrap_or_default();
        let dbname = get("dbname").unwrap_or("");
        format!("postgres://{user}{host}{port}/{dbname}")
    }

    /// The `connect_timeout` parameter (libpq: seconds; 0 or none means wait forever; we
    /// keep our own default then).
    pub(crate) fn connect_timeout(&self) -> Option<Duration> {
        self.params
            .get("connect_timeout")
            .and_then(|value| value.trim().parse::<u64>().ok())
            .filter(|seconds| *seconds > 0)
            // libpq waits at least 2 seconds.
            .map(|seconds| Duration::from_secs(seconds.max(2)))
    }

    pub(crate) fn session_attributes(&self) -> SessionAttributes {
        match self.params.get("target_session_attrs").map(String::as_str) {
            Some("read-write") => SessionAttributes::ReadWrite,
            Some("read-only") => SessionAttributes::ReadOnly,
            Some("primary") => SessionAttributes::Primary,
            Some("standby") => SessionAttributes::Standby,
            _ => SessionAttributes::Any,
        }
    }

    /// Each host to try, in order, with its connection options (libpq: one port for all
    /// hosts, or one per host).
    pub(crate) fn candidates(&self) -> Result<Vec<Candidate>, ConnInfoError> {
        self.hosts()?
            .into_iter()
            .map(|(host, port)| self.candidate(&host, &port))
            .collect()
    }

    fn hosts(&self) -> Result<Vec<(String, String)>, ConnInfoError> {
        let split = |key: &str| -> Vec<String> {
            self.params
                .get(key)
                .map(|value| {
                    value
                        .split(',')
                        .map(|part| part.trim().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let hosts = {
            let addresses = split("hostaddr");
            if addresses.is_empty() {
                split("host")
            } else {
                addresses
            }
        };
        let hosts = if hosts.is_empty() {
            vec![String::new()]
        } else {
            hosts
        };
        let ports = split("port");
        let ports = match ports.len() {
            0 => vec![String::new(); hosts.len()],
            1 => vec![ports[0].clone(); hosts.len()],
            count if count == hosts.len() => ports,
            count => {
                return Err(ConnInfoError(format!(
                    "could not match {count} port numbers to {} hosts",
                    hosts.len()
                )));
            }
        };
        for port in &ports {
            if !port.is_empty() && port.parse::<u16>().is_err() {
                return Err(ConnInfoError(
                    "a port is not a number from 1 to 65535".into(),
                ));
            }
        }
        Ok(hosts.into_iter().zip(ports).collect())
    }

    /// The driver's options for one host. Built as a URI for the driver to parse, so that it
    /// applies `~/.pgpass` (or `PGPASSFILE`) the way it does for any URL.
    fn candidate(&self, host: &str, port: &str) -> Result<Candidate, ConnInfoError> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if !host.is_empty() {
            query.append_pair("host", host);
        }
        if !port.is_empty() {
            query.append_pair("port", port);
        }
        for key in [
            "user",
            "password",
            "dbname",
            "sslmode",
            "sslrootcert",
            "sslcert",
            "sslkey",
            "options",
        ] {
            if let Some(value) = self.params.get(key) {
                query.append_pair(key, value);
            }
        }
        if let Some(name) = self
            .params
            .get("application_name")
            .or_else(|| self.params.get("fallback_application_name"))
        {
            query.append_pair("application_name", name);
        }
        let uri = format!("postgres:///?{}", query.finish());
        let mut options: PgConnectOptions = uri
            .parse()
            .map_err(|_| ConnInfoError("the connection parameters are not valid".into()))?;
        if !self.params.contains_key("password") {
            if let Some(passfile) = self.params.get("passfile") {
                if let Some(password) = crate::passfile::lookup(
                    std::path::Path::new(passfile),
                    options.get_host(),
                    options.get_port(),
                    options.get_database().unwrap_or(options.get_username()),
                    options.get_username(),
                ) {
                    options = options.password(&password);
                }
            }
        }
        let address = format!(
            "{}:{}",
            options.get_socket().map_or_else(
                || options.get_host().to_owned(),
                |socket| socket.display().to_string()
            ),
            options.get_port()
        );
        Ok(Candidate { options, address })
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    fn redacted(raw: &str) -> String {
        DatabaseUrl::resolve(raw)
            .expect("a connection string")
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
        assert_eq!(
            redacted("host=db password=s3cret dbname=app"),
            "host=db password=*** dbname=app"
        );
    }

    #[test]
    fn hides_password_query_parameters() {
        let shown = redacted("postgres://db/app?sslmode=require&password=x1");
        assert_eq!(shown, "postgres://db/app?sslmode=require&password=***");
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let url = DatabaseUrl::resolve("postgres://u:hunter2@h/d").expect("a postgres URL");
        assert!(!format!("{url} {url:?}").contains("hunter2"));
        let candidates = url.candidates().unwrap();
        assert_eq!(candidates.len(), 1);
        assert!(!format!("{:?}", candidates[0].address).contains("hunter2"));
    }

    #[test]
    fn several_hosts_take_one_port_or_one_each() {
        let url = DatabaseUrl::resolve("postgres://a:1,b:2/d").unwrap();
        let addresses: Vec<String> = url
            .candidates()
            .unwrap()
            .into_iter()
            .map(|candidate| candidate.address)
            .collect();
        assert_eq!(addresses, ["a:1", "b:2"]);
        let url = DatabaseUrl::resolve("host=a,b port=7 dbname=d").unwrap();
        let addresses: Vec<String> = url
            .candidates()
            .unwrap()
            .into_iter()
            .map(|candidate| candidate.address)
            .collect();
        assert_eq!(addresses, ["a:7", "b:7"]);
        let error = DatabaseUrl::resolve("host=a,b,c port=1,2 dbname=d").unwrap_err();
        assert_eq!(error.0, "could not match 2 port numbers to 3 hosts");
    }

    #[test]
    fn other_strings_are_not_urls() {
        assert!(DatabaseUrl::parse("/backups/nightly.dump").is_none());
        assert!(DatabaseUrl::parse("mysql://h/d").is_none());
        assert!(DatabaseUrl::parse("postgres://h/d?sslmod=require").is_none());
    }
}
