//! A pgBackRest repository as the backup: `pgbackrest info` says which PostgreSQL version the
//! stanza holds (checked before anything is restored), `pgbackrest restore` writes the
//! backup set pgBackRest picks for the target into the instance's data directory (its
//! tablespaces into the instance's `tablespaces/`), and `pgbackrest archive-get` is the
//! restore command. pgBackRest's own configuration is used (`/etc/pgbackrest/…`, its
//! environment), or the file `--pgbackrest-config` names. Run as root, pgBackRest runs as the
//! server's OS user, like the server.

use std::path::Path;
use std::process::Stdio;

use crate::binaries::ServerUser;
use crate::target::RecoveryTarget;
use crate::wal::shell_quote;
use crate::{Error, Result};

const PROGRAM: &str = "pgbackrest";

/// The stanza and the configuration to use.
#[derive(Debug, Clone)]
pub(crate) struct Repository<'a> {
    pub stanza: &'a str,
    pub config: Option<&'a Path>,
    pub user: ServerUser,
}

impl Repository<'_> {
    fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(PROGRAM);
        if let Some(config) = self.config {
            command.arg(format!("--config={}", config.display()));
        }
        command
            .arg(format!("--stanza={}", self.stanza))
            .arg("--log-level-console=warn")
            .arg("--log-level-stderr=off")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        self.user.apply_async(&mut command);
        command
    }

    async fn run(&self, command: &mut tokio::process::Command, what: &str) -> Result<String> {
        let output = command.output().await.map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                Error::program(
                    PROGRAM,
                    "not found on PATH: install pgBackRest (e.g. apt-get install pgbackrest)",
                )
            } else {
                Error::program(PROGRAM, error.to_string())
            }
        })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let said = [stdout.trim(), stderr.trim()]
                .into_iter()
                .filter(|text| !text.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Error::program(
                format!("pgbackrest {what} (stanza {})", self.stanza),
                format!("{} ({said})", output.status),
            ));
        }
        Ok(stdout)
    }

    /// The PostgreSQL major version of the stanza's latest backup, checking it has one.
    pub(crate) async fn major_version(&self) -> Result<u32> {
        let mut command = self.command();
        command.args(["--output=json", "info"]);
        let text = self.run(&mut command, "info").await?;
        let bad = |reason: String| {
            Error::program(format!("pgbackrest info (stanza {})", self.stanza), reason)
        };
        let info: serde_json::Value = serde_json::from_str(&text)
            .map_err(|error| bad(format!("output is not JSON: {error}")))?;
        let stanza = info
            .as_array()
            .and_then(|stanzas| stanzas.first())
            .ok_or_else(|| bad("no such stanza".to_owned()))?;
        let backups = stanza["backup"].as_array().map_or(0, Vec::len);
        if backups == 0 {
            let message = stanza["status"]["message"].as_str().unwrap_or("no backups");
            return Err(bad(format!(
                "the stanza has no backup to restore ({message})"
            )));
        }
        let latest = &stanza["backup"][backups - 1]["database"]["id"];
        let db = stanza["db"]
            .as_array()
            .and_then(|dbs| dbs.iter().find(|db| db["id"] == *latest))
            .or_else(|| stanza["db"].as_array().and_then(|dbs| dbs.last()))
            .ok_or_else(|| bad("no database history".to_owned()))?;
        let version = db["version"].as_str().unwrap_or("");
        version
            .split('.')
            .next()
            .and_then(|major| major.parse().ok())
            .ok_or_else(|| bad(format!("`{version}` is not a PostgreSQL version")))
    }

    /// Restores into `data` the backup set pgBackRest chooses for `target`.
    pub(crate) async fn restore(
        &self,
        data: &Path,
        tablespaces: &Path,
        target: &RecoveryTarget,
    ) -> Result<()> {
        let mut command = self.command();
        command
            .arg(format!("--pg1-path={}", data.display()))
            .arg(format!("--tablespace-map-all={}", tablespaces.display()))
            .arg("--archive-mode=off")
            .arg("--target-action=pause");
        match target {
            RecoveryTarget::Immediate => {
                command.arg("--type=immediate");
            }
            RecoveryTarget::Time(time) => {
                command
                    .arg("--type=time")
                    .arg(format!("--target={time}"))
                    .arg("--target-exclusive");
            }
            RecoveryTarget::Lsn(lsn) => {
                command
                    .arg("--type=lsn")
                    .arg(format!("--target={lsn}"))
                    .arg("--target-exclusive");
            }
            RecoveryTarget::Xid(xid) => {
                command
                    .arg("--type=xid")
                    .arg(format!("--target={xid}"))
                    .arg("--target-exclusive");
            }
        }
        command.arg("restore");
        self.run(&mut command, "restore").await.map(drop)
    }

    /// `pgbackrest … archive-get %f "%p"`, for `restore_command`.
    pub(crate) fn restore_command(&self, data: &Path) -> String {
        let mut words = vec![PROGRAM.to_owned()];
        if let Some(config) = self.config {
            words.push(shell_quote(&format!("--config={}", config.display())));
        }
        words.push(shell_quote(&format!("--pg1-path={}", data.display())));
        words.push(shell_quote(&format!("--stanza={}", self.stanza)));
        words.push("archive-get %f \"%p\"".to_owned());
        // `%` in a path must not read as a placeholder.
        let last = words.len() - 1;
        for word in &mut words[..last] {
            *word = word.replace('%', "%%");
        }
        words.join(" ")
    }
}
