//! Which recovery instances are running: one small JSON file per instance in salvage's own
//! state directory — `$XDG_RUNTIME_DIR/salvage/snapshots` when that is set, else
//! `/tmp/salvage-snapshots-<uid>` — and the same file (the marker) inside the instance's
//! directory, which is what proves a directory is salvage's to remove. `salvage snapshot
//! list` reads the state directory; `snapshot stop` the marker.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::facts::SnapshotFacts;
use crate::{Error, Result};

/// The marker's name in an instance's directory.
pub const MARKER: &str = "salvage-instance.json";

/// What is known of one running instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceState {
    pub id: String,
    /// The instance's directory (data, socket, configuration, log).
    pub dir: PathBuf,
    /// The socket URL (no password: none is needed).
    pub url: String,
    pub facts: SnapshotFacts,
    /// The directory of the binaries that run it (`pg_ctl` stops it).
    pub bin_dir: PathBuf,
    /// The postmaster's process ID.
    pub pid: u32,
    /// The server's OS user and group when salvage runs it as another user (root → postgres).
    pub run_as: Option<(u32, u32)>,
    /// Seconds since the epoch when it was started.
    pub started_at: u64,
    /// For an instance a single salvage command runs (and removes when it ends): that
    /// command's process ID. `None` for one `salvage snapshot start` left running.
    pub owner_pid: Option<u32>,
}

/// The state directory (see the module documentation).
#[must_use]
pub fn state_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("salvage").join("snapshots"),
        None => std::env::temp_dir().join(format!("salvage-snapshots-{}", own_uid())),
    }
}

fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(0, |metadata| metadata.uid())
}

fn ensure_state_dir() -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = state_dir();
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        Ok(()) => {}
        Err(error) => return Err(Error::io("create the state directory", &dir)(error)),
    }
    // In a shared /tmp, refuse a directory someone else made for us.
    let metadata = std::fs::symlink_metadata(&dir).map_err(Error::io("read", &dir))?;
    if !metadata.is_dir() || metadata.uid() != own_uid() {
        return Err(Error::Invalid(format!(
            "the state directory {} is not a directory of this user's",
            dir.display()
        )));
    }
    Ok(dir)
}

impl InstanceState {
    fn state_file(&self) -> Result<PathBuf> {
        Ok(ensure_state_dir()?.join(format!("{}.json", self.id)))
    }

    /// Writes the state file and the marker.
    ///
    /// # Panics
    ///
    /// Never: the state is plain data that always serializes.
    pub fn save(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("instance state serializes");
        let marker = self.dir.join(MARKER);
        std::fs::write(&marker, &text).map_err(Error::io("write", &marker))?;
        let file = self.state_file()?;
        std::fs::write(&file, &text).map_err(Error::io("write", &file))
    }

    /// Removes the state file (the marker goes with the directory).
    pub fn forget(&self) {
        if let Ok(file) = self.state_file() {
            let _ = std::fs::remove_file(file);
        }
    }

    /// Reads the marker of the instance directory `dir`.
    pub fn of_dir(dir: &Path) -> Result<Self> {
        let marker = dir.join(MARKER);
        let text = std::fs::read_to_string(&marker).map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                Error::Invalid(format!(
                    "{} is not a salvage recovery instance (it has no {MARKER})",
                    dir.display()
                ))
            } else {
                Error::io("read", &marker)(error)
            }
        })?;
        serde_json::from_str(&text).map_err(|error| Error::Backup {
            path: marker,
            reason: format!("not an instance state: {error}"),
        })
    }
}

/// Every instance with a state file, oldest first.
pub fn list() -> Result<Vec<InstanceState>> {
    let dir = state_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(Error::io("read the state directory", &dir)(error)),
    };
    let mut states = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(Error::io("read the state directory", &dir))?
            .path();
        if path.extension().is_none_or(|extension| extension != "json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Ok(state) = serde_json::from_str::<InstanceState>(&text) {
            states.push(state);
        }
    }
    states.sort_by_key(|state| (state.started_at, state.id.clone()));
    Ok(states)
}

/// Whether process `pid` is alive (Linux: `/proc/<pid>/stat`, a zombie counting as gone).
#[must_use]
pub fn process_exists(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))
    else {
        return false;
    };
    // "pid (comm) S ...": the state follows the command's closing parenthesis.
    let state = stat
        .rfind(") ")
        .and_then(|end| stat[end + 2..].chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}
