//! Reading the recovery instance's log as it grows: which WAL files were restored (progress),
//! where recovery stopped and why ("recovery stopping before commit of transaction 726, time
//! …"), and, when the server gave up, how far it got ("redo done at 0/90001E8", "last
//! completed transaction was at log time …") and what it said. The instance logs in English
//! (`lc_messages = 'C'`) with a fixed prefix, which is what these messages are matched on.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// What the log said so far.
#[derive(Debug, Default, Clone)]
pub(crate) struct LogFacts {
    /// WAL files restored from the archive.
    pub restored: u64,
    pub last_restored: Option<String>,
    /// "before commit of transaction 726, time 2026-…" / "after reaching consistency".
    pub stopping: Option<String>,
    pub paused: bool,
    pub redo_done_at: Option<String>,
    pub last_completed_transaction: Option<String>,
    pub consistent_at: Option<String>,
    /// FATAL and PANIC messages, in order.
    pub fatal: Vec<String>,
    /// The last WAL file the restore command did not find (from `salvage wal-fetch`).
    pub not_in_archive: Option<String>,
    /// Lines the restore command wrote about errors.
    pub restore_errors: Vec<String>,
}

/// Follows a log file from where it was last read.
#[derive(Debug)]
pub(crate) struct LogWatch {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    pub facts: LogFacts,
}

impl LogWatch {
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            offset: 0,
            partial: Vec::new(),
            facts: LogFacts::default(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads what was added since the last call; true when something was.
    pub(crate) fn poll(&mut self) -> Result<bool> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(Error::io("read", &self.path)(error)),
        };
        file.seek(SeekFrom::Start(self.offset))
            .map_err(Error::io("read", &self.path))?;
        let mut added = Vec::new();
        file.read_to_end(&mut added)
            .map_err(Error::io("read", &self.path))?;
        if added.is_empty() {
            return Ok(false);
        }
        self.offset += added.len() as u64;
        self.partial.extend_from_slice(&added);
        let complete = self
            .partial
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(0, |end| end + 1);
        let lines: Vec<u8> = self.partial.drain(..complete).collect();
        for line in String::from_utf8_lossy(&lines).lines() {
            self.facts.read(line);
        }
        Ok(true)
    }
}

impl LogFacts {
    fn read(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix(crate::wal::NOT_IN_ARCHIVE) {
            self.not_in_archive = Some(rest.trim().to_owned());
            return;
        }
        if line.starts_with(crate::wal::HELPER_PREFIX) {
            self.restore_errors.push(line.to_owned());
            return;
        }
        if let Some(message) = after(line, "FATAL:  ").or_else(|| after(line, "PANIC:  ")) {
            // Refused connections (salvage polling while the server starts) are no news.
            let refused = message.starts_with("the database system is")
                || (message.starts_with("role \"") && message.ends_with("\" does not exist"));
            if !refused {
                self.fatal.push(message.to_owned());
            }
            return;
        }
        let Some(message) = after(line, "LOG:  ") else {
            return;
        };
        if let Some(rest) = message.strip_prefix("restored log file \"") {
            self.restored += 1;
            self.last_restored = rest.split('"').next().map(ToOwned::to_owned);
        } else if let Some(rest) = message.strip_prefix("recovery stopping ") {
            self.stopping = Some(rest.to_owned());
        } else if message.starts_with("pausing at the end of recovery") {
            self.paused = true;
        } else if let Some(rest) = message.strip_prefix("redo done at ") {
            self.redo_done_at = rest.split_whitespace().next().map(ToOwned::to_owned);
        } else if let Some(rest) =
            message.strip_prefix("last completed transaction was at log time ")
        {
            self.last_completed_transaction = Some(rest.trim().to_owned());
        } else if let Some(rest) = message.strip_prefix("consistent recovery state reached at ") {
            self.consistent_at = rest.split_whitespace().next().map(ToOwned::to_owned);
        }
    }
}

/// The message after `level` in a line with the instance's prefix (`2026-… UTC [pid] LOG:  `).
fn after<'l>(line: &'l str, level: &str) -> Option<&'l str> {
    let bracket = line.find("] ")?;
    line[bracket + 2..].strip_prefix(level)
}

/// The last `count` lines of the log, for an error message.
pub(crate) fn tail(path: &Path, count: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::LogFacts;

    #[test]
    fn reads_where_recovery_stopped() {
        let mut facts = LogFacts::default();
        for line in [
            "2026-12-01 22:19:00.095 UTC [12403] LOG:  restored log file \"000000010000000000000002\" from archive",
            "2026-12-01 22:19:00.353 UTC [12403] LOG:  consistent recovery state reached at 0/2000100",
            "2026-12-01 22:19:00.355 UTC [12403] LOG:  recovery stopping before commit of transaction 726, time 2026-12-01 22:18:52.369489+00",
            "2026-12-01 22:19:00.355 UTC [12403] LOG:  pausing at the end of recovery",
        ] {
            facts.read(line);
        }
        assert_eq!(facts.restored, 1);
        assert_eq!(
            facts.last_restored.as_deref(),
            Some("000000010000000000000002")
        );
        assert_eq!(
            facts.stopping.as_deref(),
            Some("before commit of transaction 726, time 2026-12-01 22:18:52.369489+00")
        );
        assert!(facts.paused);
        assert_eq!(facts.consistent_at.as_deref(), Some("0/2000100"));
    }

    #[test]
    fn reads_how_far_a_failed_recovery_got() {
        let mut facts = LogFacts::default();
        for line in [
            "salvage wal-fetch: not in the archive: 00000001000000000000000A",
            "2026-12-01 22:19:11.050 UTC [12750] FATAL:  the database system is not yet accepting connections",
            "2026-12-01 22:19:11.053 UTC [12746] LOG:  redo done at 0/90001E8 system usage: CPU: user: 0.00 s",
            "2026-12-01 22:19:11.053 UTC [12746] LOG:  last completed transaction was at log time 2026-12-01 22:18:52.404327+00",
            "2026-12-01 22:19:11.053 UTC [12746] FATAL:  recovery ended before configured recovery target was reached",
        ] {
            facts.read(line);
        }
        assert_eq!(facts.redo_done_at.as_deref(), Some("0/90001E8"));
        assert_eq!(
            facts.last_completed_transaction.as_deref(),
            Some("2026-12-01 22:18:52.404327+00")
        );
        assert_eq!(
            facts.fatal,
            ["recovery ended before configured recovery target was reached"]
        );
        assert_eq!(
            facts.not_in_archive.as_deref(),
            Some("00000001000000000000000A")
        );
    }
}
