//! Passwords from a password file named by the `passfile` parameter, in `~/.pgpass` format
//! (`host:port:database:user:password`, `*` matching anything, `\` escaping `:` and `\`).
//! The driver reads `~/.pgpass` and `PGPASSFILE` itself; this serves an explicit `passfile=`.

use std::path::Path;

/// The password of the first line matching the connection, if any.
pub(crate) fn lookup(
    path: &Path,
    host: &str,
    port: u16,
    database: &str,
    user: &str,
) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    // A socket directory is `localhost` to a password file, as libpq has it.
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    let port = port.to_string();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split(line);
            let [h, p, d, u, password] = fields.as_slice() else {
                return None;
            };
            let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
            (matches(h, host) && matches(p, &port) && matches(d, database) && matches(u, user))
                .then(|| password.clone())
        })
}

/// The five fields of a line, unescaped.
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field at least").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            ch => fields.last_mut().expect("one field at least").push(ch),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::{lookup, split};

    #[test]
    fn splits_escaped_fields() {
        assert_eq!(
            split("h:5432:d:u:p\\:w:x"),
            ["h", "5432", "d", "u", "p:w:x"]
        );
    }

    #[test]
    fn finds_the_first_matching_line() {
        let dir = std::env::temp_dir().join(format!("salvage-passfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pass");
        std::fs::write(
            &path,
            "# c\nother:*:*:*:no\ndb:*:app:alice:yes\n*:*:*:*:fallback\n",
        )
        .unwrap();
        assert_eq!(
            lookup(&path, "db", 5432, "app", "alice").as_deref(),
            Some("yes")
        );
        assert_eq!(lookup(&path, "x", 1, "y", "z").as_deref(), Some("fallback"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
