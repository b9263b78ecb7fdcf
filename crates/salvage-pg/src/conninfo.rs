//! Connection strings the way libpq (and so psql) reads them: `postgres://` URIs with several
//! hosts, `key=value` strings, `service=` entries of `pg_service.conf`, and the `PG*`
//! environment filling whatever the string leaves unset. Every parameter libpq knows is
//! either honoured, irrelevant to salvage (accepted), or refused with the reason; a name
//! libpq does not know is refused, as libpq refuses it.
//!
//! Errors never quote a value: the string may hold a password.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Parameters by libpq keyword.
pub type Params = BTreeMap<String, String>;

/// Why a connection string was refused. The text names parameters, never their values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnInfoError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, ConnInfoError> {
    Err(ConnInfoError(message.into()))
}

/// What salvage does with a libpq parameter.
enum Support {
    /// Honoured.
    Used,
    /// Honoured when its value is one of these (libpq's other values are refused).
    Values(&'static [&'static str]),
    /// Changes nothing salvage relies on (TCP keepalives, Kerberos names): accepted, unused.
    Irrelevant,
    /// Would change how salvage authenticates or verifies the server, which it cannot do.
    Refused,
}

/// Every connection parameter of libpq (PostgreSQL 18), and what salvage does with it.
const KEYWORDS: &[(&str, Support)] = &[
    ("host", Support::Used),
    ("hostaddr", Support::Used),
    ("port", Support::Used),
    ("dbname", Support::Used),
    ("user", Support::Used),
    ("password", Support::Used),
    ("passfile", Support::Used),
    ("service", Support::Used),
    ("connect_timeout", Support::Used),
    ("application_name", Support::Used),
    ("fallback_application_name", Support::Used),
    ("options", Support::Used),
    ("sslmode", Support::Used),
    ("sslrootcert", Support::Used),
    ("sslcert", Support::Used),
    ("sslkey", Support::Used),
    (
        "target_session_attrs",
        Support::Values(&["any", "read-write", "read-only", "primary", "standby"]),
    ),
    ("load_balance_hosts", Support::Values(&["disable"])),
    (
        "client_encoding",
        Support::Values(&["UTF8", "utf8", "UTF-8", "utf-8"]),
    ),
    ("channel_binding", Support::Values(&["disable", "prefer"])),
    ("gssencmode", Support::Values(&["disable", "prefer"])),
    ("sslnegotiation", Support::Values(&["postgres"])),
    ("sslsni", Support::Values(&["1"])),
    ("replication", Support::Values(&["0", "false", "off", "no"])),
    ("keepalives", Support::Irrelevant),
    ("keepalives_idle", Support::Irrelevant),
    ("keepalives_interval", Support::Irrelevant),
    ("keepalives_count", Support::Irrelevant),
    ("tcp_user_timeout", Support::Irrelevant),
    ("sslcompression", Support::Irrelevant),
    ("krbsrvname", Support::Irrelevant),
    ("gsslib", Support::Irrelevant),
    ("gssdelegation", Support::Irrelevant),
    ("require_auth", Support::Refused),
    ("sslpassword", Support::Refused),
    ("sslcertmode", Support::Refused),
    ("sslcrl", Support::Refused),
    ("sslcrldir", Support::Refused),
    ("sslkeylogfile", Support::Refused),
    ("requirepeer", Support::Refused),
    ("ssl_min_protocol_version", Support::Refused),
    ("ssl_max_protocol_version", Support::Refused),
    ("min_protocol_version", Support::Refused),
    ("max_protocol_version", Support::Refused),
    ("oauth_issuer", Support::Refused),
    ("oauth_client_id", Support::Refused),
    ("oauth_client_secret", Support::Refused),
    ("oauth_scope", Support::Refused),
];

/// The environment variables libpq reads, and the parameter each one sets.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGPASSFILE", "passfile"),
    ("PGSERVICE", "service"),
    ("PGOPTIONS", "options"),
    ("PGAPPNAME", "application_name"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCRL", "sslcrl"),
    ("PGSSLCRLDIR", "sslcrldir"),
    ("PGSSLCERTMODE", "sslcertmode"),
    ("PGSSLSNI", "sslsni"),
    ("PGSSLNEGOTIATION", "sslnegotiation"),
    ("PGREQUIREPEER", "requirepeer"),
    ("PGREQUIREAUTH", "require_auth"),
    ("PGCHANNELBINDING", "channel_binding"),
    ("PGGSSENCMODE", "gssencmode"),
    ("PGSSLMINPROTOCOLVERSION", "ssl_min_protocol_version"),
    ("PGSSLMAXPROTOCOLVERSION", "ssl_max_protocol_version"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGCLIENTENCODING", "client_encoding"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs"),
    ("PGLOADBALANCEHOSTS", "load_balance_hosts"),
    ("PGKRBSRVNAME", "krbsrvname"),
    ("PGGSSLIB", "gsslib"),
    ("PGGSSDELEGATION", "gssdelegation"),
];

/// Whether `text` is a connection string rather than a path: a `postgres://` or
/// `postgresql://` URI, or `keyword=value` with a libpq keyword first.
#[must_use]
pub fn is_connection_string(text: &str) -> bool {
    if uri_rest(text).is_some() {
        return true;
    }
    let trimmed = text.trim_start();
    let name_end = trimmed
        .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .unwrap_or(trimmed.len());
    let name = &trimmed[..name_end];
    !name.is_empty()
        && trimmed[name_end..].trim_start().starts_with('=')
        && KEYWORDS.iter().any(|(keyword, _)| *keyword == name)
}

/// A URI's text after its `postgres://` or `postgresql://` prefix (any case).
fn uri_rest(text: &str) -> Option<&str> {
    ["postgresql://", "postgres://"].iter().find_map(|prefix| {
        text.get(..prefix.len())
            .filter(|start| start.eq_ignore_ascii_case(prefix))
            .map(|_| &text[prefix.len()..])
    })
}

/// Where the defaults come from besides the string: the environment and the files it names.
/// Tests give their own.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn read(&self, path: &std::path::Path) -> Option<String>;
    fn home(&self) -> Option<PathBuf>;
}

/// The process's environment and file system.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }

    fn read(&self, path: &std::path::Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    fn home(&self) -> Option<PathBuf> {
        std::env::var_os("HOME").map(PathBuf::from)
    }
}

/// Parses `text` (a URI, a `key=value` string, or empty for the environment alone) and fills
/// what it leaves unset from its service, then the environment, as libpq does; checks every
/// parameter.
pub fn resolve(text: &str, environment: &dyn Environment) -> Result<Params, ConnInfoError> {
    let mut params = match uri_rest(text) {
        Some(rest) => parse_uri(rest)?,
        None => parse_key_values(text)?,
    };
    let service = params
        .get("service")
        .cloned()
        .or_else(|| environment.var("PGSERVICE"));
    if let Some(service) = service {
        for (key, value) in service_params(&service, environment)? {
            params.entry(key).or_insert(value);
        }
    }
    for (variable, key) in ENVIRONMENT {
        if let Some(value) = environment.var(variable) {
            params.entry((*key).to_owned()).or_insert(value);
        }
    }
    params.remove("service");
    check(&params)?;
    Ok(params)
}

/// Every parameter is known and supported with its value.
fn check(params: &Params) -> Result<(), ConnInfoError> {
    for (key, value) in params {
        let Some((_, support)) = KEYWORDS.iter().find(|(keyword, _)| keyword == key) else {
            return fail(format!("invalid connection option \"{key}\""));
        };
        match support {
            Support::Used | Support::Irrelevant => {}
            Support::Values(allowed) => {
                if !allowed.contains(&value.as_str()) {
                    return fail(format!(
                        "the connection option {key} is supported only as {} (salvage connects through its own driver, not libpq)",
                        allowed.join(" or ")
                    ));
                }
            }
            Support::Refused => {
                return fail(format!(
                    "the connection option {key} is not supported: salvage connects through its own driver, not libpq, and cannot honour it"
                ));
            }
        }
    }
    Ok(())
}

/// libpq's URI form: `[user[:password]@][host[:port][,host[:port]…]][/dbname][?key=value&…]`.
fn parse_uri(rest: &str) -> Result<Params, ConnInfoError> {
    let mut params = Params::new();
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    // The userinfo ends at the last `@` before the path.
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let hosts = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.insert("user".into(), decode(user, "the user name")?);
            }
            if let Some(password) = password {
                params.insert("password".into(), decode(password, "the password")?);
            }
            &authority[at + 1..]
        }
        None => authority,
    };
    let (hosts, ports) = parse_hosts(hosts)?;
    if hosts.iter().any(|host| !host.is_empty()) {
        params.insert("host".into(), hosts.join(","));
    }
    if ports.iter().any(|port| !port.is_empty()) {
        params.insert("port".into(), ports.join(","));
    }
    let dbname = path.strip_prefix('/').unwrap_or(path);
    if !dbname.is_empty() {
        params.insert("dbname".into(), decode(dbname, "the database name")?);
    }
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let Some((key, value)) = pair.split_once('=') else {
            return fail(format!(
                "a URI query parameter has no value: \"{}\"",
                decode(pair, "a parameter name")?
            ));
        };
        let key = decode(key, "a parameter name")?;
        let value = decode(value, "a parameter value")?;
        // libpq's one alias: ssl=true is sslmode=require.
        if key == "ssl" && value == "true" {
            params.insert("sslmode".into(), "require".into());
            continue;
        }
        if !KEYWORDS.iter().any(|(keyword, _)| *keyword == key) {
            return fail(format!("invalid URI query parameter: \"{key}\""));
        }
        params.insert(key, value);
    }
    Ok(params)
}

/// `a:5432,[::1]:5433,b` → hosts and ports, each possibly empty.
fn parse_hosts(text: &str) -> Result<(Vec<String>, Vec<String>), ConnInfoError> {
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    if text.is_empty() {
        return Ok((hosts, ports));
    }
    for spec in split_hosts(text) {
        let (host, port) = if let Some(bracketed) = spec.strip_prefix('[') {
            let Some((host, after)) = bracketed.split_once(']') else {
                return fail("an IPv6 host address in the URI lacks its closing ]");
            };
            let port = match after {
                "" => "",
                _ => after.strip_prefix(':').ok_or_else(|| {
                    ConnInfoError("unexpected text after an IPv6 host address in the URI".into())
                })?,
            };
            (host.to_owned(), port)
        } else {
            match spec.rsplit_once(':') {
                Some((host, port)) => (decode(host, "a host name")?, port),
                None => (decode(spec, "a host name")?, ""),
            }
        };
        if !port.chars().all(|ch| ch.is_ascii_digit()) {
            return fail("a port in the URI is not a number");
        }
        hosts.push(host);
        ports.push(port.to_owned());
    }
    Ok((hosts, ports))
}

/// Splits on commas outside brackets.
fn split_hosts(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (index, ch) in text.char_indices() {
        match ch {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Percent-decoding; `what` names the part in a message (never its value).
fn decode(text: &str, what: &str) -> Result<String, ConnInfoError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            let Some(byte) = hex else {
                return fail(format!("invalid percent-encoding in {what} of the URI"));
            };
            if byte == 0 {
                return fail(format!("forbidden %00 in {what} of the URI"));
            }
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).or_else(|_| fail(format!("{what} of the URI is not UTF-8")))
}

/// libpq's `key = value …` form: values bare (backslash escapes) or in single quotes.
fn parse_key_values(text: &str) -> Result<Params, ConnInfoError> {
    let mut params = Params::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|ch| ch.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(params);
        }
        let mut key = String::new();
        while let Some(&ch) = chars.peek() {
            if ch == '=' || ch.is_whitespace() {
                break;
            }
            key.push(ch);
            chars.next();
        }
        while chars.peek().is_some_and(|ch| ch.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return fail(format!(
                "missing \"=\" after \"{key}\" in the connection string"
            ));
        }
        while chars.peek().is_some_and(|ch| ch.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => {
                        if let Some(ch) = chars.next() {
                            value.push(ch);
                        }
                    }
                    Some('\'') => break,
                    Some(ch) => value.push(ch),
                    None => {
                        return fail(format!(
                            "unterminated quoted string for \"{key}\" in the connection string"
                        ));
                    }
                }
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                chars.next();
                if ch == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(ch);
                }
            }
        }
        if !KEYWORDS.iter().any(|(keyword, _)| *keyword == key) {
            return fail(format!("invalid connection option \"{key}\""));
        }
        params.insert(key, value);
    }
}

/// The parameters of `service` in `pg_service.conf`: the user's file (`PGSERVICEFILE`, else
/// `~/.pg_service.conf`), else the system's (`PGSYSCONFDIR/pg_service.conf`).
fn service_params(service: &str, environment: &dyn Environment) -> Result<Params, ConnInfoError> {
    let user_file = environment
        .var("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| environment.home().map(|home| home.join(".pg_service.conf")));
    let system_file = PathBuf::from(
        environment
            .var("PGSYSCONFDIR")
            .unwrap_or_else(|| "/etc/postgresql-common".to_owned()),
    )
    .join("pg_service.conf");
    let mut looked = Vec::new();
    for path in user_file.into_iter().chain([system_file]) {
        looked.push(path.display().to_string());
        let Some(text) = environment.read(&path) else {
            continue;
        };
        if let Some(params) = service_section(&text, service, &path)? {
            return Ok(params);
        }
    }
    fail(format!(
        "definition of service \"{service}\" not found (looked in {})",
        looked.join(", ")
    ))
}

/// The `[service]` section of a `pg_service.conf`, if it has one.
fn service_section(
    text: &str,
    service: &str,
    path: &std::path::Path,
) -> Result<Option<Params>, ConnInfoError> {
    let mut found: Option<Params> = None;
    let mut inside = false;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line
            .strip_prefix('[')
            .and_then(|line| line.strip_suffix(']'))
        {
            if found.is_some() {
                break;
            }
            inside = name == service;
            if inside {
                found = Some(Params::new());
            }
            continue;
        }
        if !inside {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return fail(format!(
                "syntax error in service file {}, line {}",
                path.display(),
                number + 1
            ));
        };
        let key = key.trim();
        if key == "service" {
            return fail(format!(
                "nested service specifications not supported in service file {}, line {}",
                path.display(),
                number + 1
            ));
        }
        if let Some(params) = found.as_mut() {
            params.insert(key.to_owned(), value.trim().to_owned());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::{Environment, Params, is_connection_string, resolve};

    #[derive(Default)]
    struct Fake {
        vars: BTreeMap<&'static str, &'static str>,
        files: BTreeMap<PathBuf, &'static str>,
    }

    impl Environment for Fake {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).map(|value| (*value).to_owned())
        }
        fn read(&self, path: &Path) -> Option<String> {
            self.files.get(path).map(|text| (*text).to_owned())
        }
        fn home(&self) -> Option<PathBuf> {
            Some(PathBuf::from("/home/op"))
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn reads_uris_with_several_hosts() {
        let env = Fake::default();
        assert_eq!(
            resolve(
                "postgresql://al%40ce:p%3Ass@db1:5433,[::1]:5434,db3/app%20x?sslmode=require&application_name=x",
                &env
            )
            .unwrap(),
            params(&[
                ("user", "al@ce"),
                ("password", "p:ss"),
                ("host", "db1,::1,db3"),
                ("port", "5433,5434,"),
                ("dbname", "app x"),
                ("sslmode", "require"),
                ("application_name", "x"),
            ])
        );
        assert_eq!(
            resolve("postgres:///app?host=/var/run/postgresql", &env).unwrap(),
            params(&[("dbname", "app"), ("host", "/var/run/postgresql")])
        );
    }

    #[test]
    fn refuses_unknown_and_unsupported_parameters_without_their_values() {
        let env = Fake::default();
        let error = resolve("postgres://u:PW@h/d?sslmod=require", &env).unwrap_err();
        assert_eq!(error.0, "invalid URI query parameter: \"sslmod\"");
        let error = resolve("host=h sslpassword=PW", &env).unwrap_err();
        assert!(error.0.contains("sslpassword is not supported"), "{error}");
        assert!(!error.0.contains("PW"));
        let error = resolve("host=h passwrd=PW", &env).unwrap_err();
        assert_eq!(error.0, "invalid connection option \"passwrd\"");
        let error = resolve("postgres://h/d?channel_binding=require", &env).unwrap_err();
        assert!(
            error.0.contains("channel_binding is supported only as"),
            "{error}"
        );
    }

    #[test]
    fn reads_key_value_strings() {
        let env = Fake::default();
        assert_eq!(
            resolve(
                "host=db port = 5433 dbname='my app' password='it\\'s' user=a\\ b",
                &env
            )
            .unwrap(),
            params(&[
                ("host", "db"),
                ("port", "5433"),
                ("dbname", "my app"),
                ("password", "it's"),
                ("user", "a b"),
            ])
        );
        assert!(resolve("host=db dbname='open", &env).is_err());
        assert!(resolve("host db", &env).is_err());
    }

    #[test]
    fn the_service_then_the_environment_fill_what_the_string_leaves_unset() {
        let mut env = Fake::default();
        env.vars.insert("PGUSER", "from_env");
        env.vars.insert("PGPORT", "6000");
        env.vars.insert("PGDATABASE", "envdb");
        env.files.insert(
            PathBuf::from("/home/op/.pg_service.conf"),
            "# comment\n[other]\nhost=nope\n[live]\nhost=live-db\nport=5439\n",
        );
        assert_eq!(
            resolve("service=live dbname=app", &env).unwrap(),
            params(&[
                ("host", "live-db"),
                ("port", "5439"),
                ("dbname", "app"),
                ("user", "from_env"),
            ])
        );
        env.vars.insert("PGSERVICE", "live");
        assert_eq!(
            resolve("", &env).unwrap(),
            params(&[
                ("host", "live-db"),
                ("port", "5439"),
                ("dbname", "envdb"),
                ("user", "from_env"),
            ])
        );
        let error = resolve("service=gone", &env).unwrap_err();
        assert!(error.0.contains("service \"gone\" not found"), "{error}");
    }

    #[test]
    fn tells_connection_strings_from_paths() {
        for text in [
            "postgres://h/d",
            "POSTGRESQL://h",
            "host=h dbname=d",
            "dbname = app",
            "service=live",
        ] {
            assert!(is_connection_string(text), "{text}");
        }
        for text in [
            "/backups/nightly.dump",
            "dump=1.sql",
            "mysql://h/d",
            "-",
            "x.dump",
        ] {
            assert!(!is_connection_string(text), "{text}");
        }
    }
}
