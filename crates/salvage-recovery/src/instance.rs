//! A recovery instance from start to stop: check the backup and find its binaries, make the
//! instance's directory, put the backup there, configure it, start the server, wait until it
//! has paused at the target, and hand out its socket URL. Two guards undo it: the server's
//! (stops the server) and the directory's (stops a copy in progress, removes the directory
//! and the state file), dropped in that order — on success when the command ends, on an
//! error or a cancelled future at once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use salvage_pg::DatabaseUrl;

use crate::backup::{Backup, BackupLabel, major_version};
use crate::binaries::{self, ServerBinaries, ServerUser};
use crate::config::{self, ControlSettings, Layout};
use crate::facts::SnapshotFacts;
use crate::log::LogWatch;
use crate::materialise::{self, Destination, TarFiles};
use crate::pgbackrest::Repository;
use crate::process::Server;
use crate::state::InstanceState;
use crate::target::RecoveryTarget;
use crate::wait::Wait;
use crate::{Error, RecoveryReporter, Result, Step};

/// Where the WAL after the backup comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalSource {
    /// Only the WAL the backup holds (`pg_basebackup -X stream`).
    BackupOnly,
    /// A directory `archive_command = 'cp %p DIR/%f'` filled (segments may be compressed).
    Archive(PathBuf),
    /// Any `restore_command`.
    Command(String),
}

/// Everything a recovery instance is made from.
#[derive(Debug, Clone)]
pub struct RecoveryOptions {
    pub backup: Backup,
    pub wal: WalSource,
    pub target: RecoveryTarget,
    /// The database the snapshot reads.
    pub database: String,
    /// `--pg-bin DIR`: look for the server binaries only there.
    pub pg_bin: Option<PathBuf>,
    /// `--pgbackrest-config FILE`.
    pub pgbackrest_config: Option<PathBuf>,
    /// The instance's directory (must not exist, or be empty); `None`: a new directory in
    /// the temporary directory (`$TMPDIR`).
    pub dir: Option<PathBuf>,
    /// The salvage binary, run by the server as `salvage wal-fetch` for an archive directory.
    pub helper: PathBuf,
    /// Roles to connect as; the bootstrap superuser is used once one works.
    pub users: Vec<String>,
    /// Give up when replay makes no progress for this long.
    pub stall_timeout: Duration,
}

/// A running, paused, read-only instance; stopped and removed when dropped.
#[derive(Debug)]
pub struct RecoveryInstance {
    // Field order is drop order: the server stops before its directory goes.
    server: Option<Server>,
    dir: DirGuard,
    state: InstanceState,
    url: DatabaseUrl,
}

impl RecoveryInstance {
    /// Builds, starts and checks an instance; see the module documentation.
    pub async fn start(
        options: RecoveryOptions,
        reporter: Arc<dyn RecoveryReporter>,
    ) -> Result<Self> {
        options.backup.check()?;
        check_wal_source(&options)?;
        let user = blocking(ServerUser::detect).await?;
        // The binaries are found before anything is copied wherever the version is known
        // up front; a tar backup tells it from its first entries.
        let early = match &options.backup {
            Backup::Plain(dir) => {
                let file = dir.join("PG_VERSION");
                let text = std::fs::read_to_string(&file).map_err(Error::io("read", &file))?;
                let major = major_version(&text, &file)?;
                let pg_bin = options.pg_bin.clone();
                Some(blocking(move || binaries::find(major, pg_bin.as_deref(), &file)).await?)
            }
            Backup::PgBackRest { stanza } => {
                let repository = Repository {
                    stanza,
                    config: options.pgbackrest_config.as_deref(),
                    user,
                };
                let major = repository.major_version().await?;
                let pg_bin = options.pg_bin.clone();
                let file = PathBuf::from(format!("pgbackrest info, stanza {stanza}"));
                Some(blocking(move || binaries::find(major, pg_bin.as_deref(), &file)).await?)
            }
            Backup::Tar { .. } => None,
        };

        let dir = DirGuard::create(options.dir.clone(), user)?;
        let layout = Layout {
            root: dir.path.clone(),
        };
        let binaries = materialise(&options, &layout, &dir, user, early, &reporter).await?;
        let helper = helper_for(&options, &layout, user).await?;
        let restore_command = match &options.wal {
            WalSource::BackupOnly => "false".to_owned(),
            WalSource::Archive(archive) => crate::wal::restore_command(&helper, archive),
            WalSource::Command(command) => command.clone(),
        };
        let restore_command = match &options.backup {
            Backup::PgBackRest { stanza } => Repository {
                stanza,
                config: options.pgbackrest_config.as_deref(),
                user,
            }
            .restore_command(&layout.data()),
            _ => restore_command,
        };
        let label = read_label(&layout.data())?;
        {
            let layout = layout.clone();
            let binaries = binaries.clone();
            let target = options.target.clone();
            blocking(move || {
                let controls = ControlSettings::read(&binaries, &layout.data())?;
                config::write(&layout, &target, &restore_command, controls)?;
                own_tree(&layout.root, user)
            })
            .await?;
        }

        reporter.step(Step::Starting {
            version: binaries.version.clone(),
        });
        let mut server = Server::start(&binaries, &layout, user)?;
        let mut state = InstanceState {
            id: dir.id.clone(),
            dir: dir.path.clone(),
            url: String::new(),
            facts: SnapshotFacts {
                backup: options.backup.to_string(),
                format: options.backup.format(),
                label,
                server_version: binaries.version.clone(),
                wal: describe_wal(&options),
                target: options.target.to_string(),
                stopped: crate::facts::StopPoint {
                    lsn: String::new(),
                    last_transaction_at: None,
                    reason: "(replaying)".to_owned(),
                },
                database: options.database.clone(),
            },
            bin_dir: binaries.dir.clone(),
            pid: server.pid,
            run_as: user.ids,
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs()),
            owner_pid: Some(std::process::id()),
        };
        state.save()?;

        reporter.step(Step::Replaying);
        let paused = Wait {
            server: &mut server,
            log: LogWatch::new(&layout.log()),
            socket: layout.socket_dir(),
            users: &options.users,
            target: &options.target,
            reporter: reporter.as_ref(),
            stall: options.stall_timeout,
            has_archive: options.wal != WalSource::BackupOnly
                || matches!(options.backup, Backup::PgBackRest { .. }),
            major: binaries.major,
        }
        .until_paused()
        .await?;
        if !paused.databases.contains(&options.database) {
            return Err(Error::Invalid(format!(
                "the backup has no database `{}` (it has {}): name the one to read with --snapshot-dbname",
                options.database,
                paused.databases.join(", ")
            )));
        }
        let url = socket_url(&layout.socket_dir(), &paused.user, &options.database);
        // The socket URL has no password: its text is safe to keep in the state file.
        url.redacted().clone_into(&mut state.url);
        state.facts.stopped = paused.stop;
        state.save()?;
        Ok(Self {
            server: Some(server),
            dir,
            state,
            url,
        })
    }

    /// The socket URL of the paused instance, to read as any database snapshot.
    #[must_use]
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    #[must_use]
    pub fn facts(&self) -> &SnapshotFacts {
        &self.state.facts
    }

    #[must_use]
    pub fn state(&self) -> &InstanceState {
        &self.state
    }

    /// Leaves the instance running after this process ends (`salvage snapshot start`);
    /// `salvage snapshot stop` removes it.
    pub fn keep(mut self) -> Result<InstanceState> {
        self.state.owner_pid = None;
        self.state.save()?;
        if let Some(server) = self.server.take() {
            server.detach();
        }
        self.dir.armed = false;
        Ok(self.state.clone())
    }

    /// Stops the server and removes the directory, reporting what went wrong.
    pub fn stop(mut self) -> Result<()> {
        if let Some(server) = self.server.take() {
            server.stop()?;
        }
        self.dir.remove()
    }
}

/// Stops the instance a state file describes and removes its directory.
pub fn stop_instance(state: &InstanceState) -> Result<()> {
    // The marker in the directory is what makes it salvage's to remove.
    if state.dir.exists() {
        let marker = InstanceState::of_dir(&state.dir)?;
        if marker.id != state.id {
            return Err(Error::Invalid(format!(
                "{} belongs to another instance ({}), not {}",
                state.dir.display(),
                marker.id,
                state.id
            )));
        }
    }
    let layout = Layout {
        root: state.dir.clone(),
    };
    crate::process::stop(
        &state.bin_dir,
        &layout.data(),
        ServerUser { ids: state.run_as },
        state.pid,
    )?;
    if state.dir.exists() {
        std::fs::remove_dir_all(&state.dir)
            .map_err(Error::io("remove the directory", &state.dir))?;
    }
    state.forget();
    Ok(())
}

fn check_wal_source(options: &RecoveryOptions) -> Result<()> {
    if let Backup::PgBackRest { .. } = options.backup {
        if options.wal != WalSource::BackupOnly {
            return Err(Error::Invalid(
                "a pgbackrest: snapshot takes its WAL from the repository (archive-get): leave out --wal-archive and --restore-command".to_owned(),
            ));
        }
    } else if options.pgbackrest_config.is_some() {
        return Err(Error::Invalid(
            "--pgbackrest-config is for a pgbackrest:STANZA snapshot".to_owned(),
        ));
    }
    if let WalSource::Archive(dir) = &options.wal {
        if !dir.is_dir() {
            return Err(Error::Invalid(format!(
                "--wal-archive {}: not a directory",
                dir.display()
            )));
        }
    }
    Ok(())
}

fn describe_wal(options: &RecoveryOptions) -> String {
    match (&options.backup, &options.wal) {
        (Backup::PgBackRest { stanza }, _) => format!("pgBackRest archive of stanza {stanza}"),
        (_, WalSource::BackupOnly) => "the backup's own WAL only".to_owned(),
        (_, WalSource::Archive(dir)) => format!("archive directory {}", dir.display()),
        (_, WalSource::Command(command)) => format!("restore command {command}"),
    }
}

/// Copies, unpacks or restores the backup into the instance's data directory; the binaries.
async fn materialise(
    options: &RecoveryOptions,
    layout: &Layout,
    dir: &DirGuard,
    user: ServerUser,
    early: Option<ServerBinaries>,
    reporter: &Arc<dyn RecoveryReporter>,
) -> Result<ServerBinaries> {
    if let Backup::PgBackRest { stanza } = &options.backup {
        reporter.step(Step::PgBackRestRestore {
            stanza: stanza.clone(),
        });
        for path in [layout.data(), layout.tablespaces()] {
            std::fs::create_dir(&path).map_err(Error::io("create the directory", &path))?;
            set_private(&path)?;
            user.own(&path)?;
        }
        Repository {
            stanza,
            config: options.pgbackrest_config.as_deref(),
            user,
        }
        .restore(&layout.data(), &layout.tablespaces(), &options.target)
        .await?;
        return early.ok_or_else(|| Error::Invalid("no binaries".to_owned()));
    }
    let backup = options.backup.clone();
    let pg_bin = options.pg_bin.clone();
    let layout = layout.clone();
    let cancel = Arc::clone(&dir.cancel);
    let reporter = Arc::clone(reporter);
    blocking(move || {
        let found = Mutex::new(early);
        let mut version = |major: u32, file: &Path| -> Result<()> {
            let mut found = found.lock().expect("not poisoned");
            if found.is_none() {
                *found = Some(binaries::find(major, pg_bin.as_deref(), file)?);
            }
            Ok(())
        };
        let (total, tar) = match &backup {
            Backup::Plain(from) => (materialise::plain_size(from)?, None),
            Backup::Tar { dir, base } => {
                let files = TarFiles::find(dir, base)?;
                (files.size()?, Some(files))
            }
            Backup::PgBackRest { .. } => unreachable!("restored above"),
        };
        reporter.step(Step::Copying {
            from: backup.to_string(),
            bytes: total,
        });
        let mut progress = |done: u64| reporter.copied(done, total);
        let mut destination = Destination {
            data: &layout.data(),
            tablespaces: &layout.tablespaces(),
            cancel: &cancel,
            progress: &mut progress,
            version: &mut version,
        };
        match (&backup, tar) {
            (Backup::Plain(from), _) => materialise::copy_plain(from, &mut destination)?,
            (_, Some(files)) => materialise::unpack_tar(&files, &mut destination)?,
            _ => unreachable!("a plain or tar backup"),
        }
        found
            .into_inner()
            .expect("not poisoned")
            .ok_or_else(|| Error::Invalid("the backup's version was never read".to_owned()))
    })
    .await
}

/// The salvage binary as the server's user can run it: itself, or a copy in the instance's
/// directory when that user cannot reach it (a binary under /root, say).
async fn helper_for(
    options: &RecoveryOptions,
    layout: &Layout,
    user: ServerUser,
) -> Result<PathBuf> {
    if !matches!(options.wal, WalSource::Archive(_)) || user.ids.is_none() {
        return Ok(options.helper.clone());
    }
    let helper = options.helper.clone();
    let mut command = tokio::process::Command::new(&helper);
    command.arg("--version").stdin(std::process::Stdio::null());
    user.apply_async(&mut command);
    if command
        .output()
        .await
        .is_ok_and(|output| output.status.success())
    {
        return Ok(helper);
    }
    let copy = layout.root.join("salvage");
    std::fs::copy(&helper, &copy).map_err(Error::io("copy the salvage binary to", &copy))?;
    Ok(copy)
}

fn read_label(data: &Path) -> Result<BackupLabel> {
    let path = data.join("backup_label");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(BackupLabel::parse(&text)),
        Err(error) => Err(Error::Backup {
            path: data.to_owned(),
            reason: format!("the restored backup has no readable backup_label: {error}"),
        }),
    }
}

/// `postgresql:///DB?host=SOCKET&port=5432&user=ROLE`, which psql reads too.
fn socket_url(socket: &Path, user: &str, database: &str) -> DatabaseUrl {
    let text = format!(
        "postgresql:///{}?host={}&port={}&user={}&sslmode=disable",
        percent(database),
        percent(&socket.to_string_lossy()),
        config::PORT,
        percent(user)
    );
    DatabaseUrl::parse(&text).expect("a postgresql:// URL")
}

fn percent(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn set_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(Error::io("set the permissions of", path))
}

/// Gives everything under `root` to the server's user.
fn own_tree(root: &Path, user: ServerUser) -> Result<()> {
    if user.ids.is_none() {
        return Ok(());
    }
    user.own(root)?;
    let metadata = std::fs::symlink_metadata(root).map_err(Error::io("read", root))?;
    if metadata.is_dir() {
        for entry in std::fs::read_dir(root).map_err(Error::io("read the directory", root))? {
            let entry = entry.map_err(Error::io("read the directory", root))?;
            own_tree(&entry.path(), user)?;
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::Invalid(format!("a preparation task failed: {error}")))?
}

/// The instance's directory, removed when dropped (unless kept).
#[derive(Debug)]
struct DirGuard {
    path: PathBuf,
    id: String,
    cancel: Arc<AtomicBool>,
    armed: bool,
}

/// Longest socket path the kernel takes (`sun_path`, less its NUL).
const SOCKET_PATH_MAX: usize = 107;

impl DirGuard {
    fn create(dir: Option<PathBuf>, user: ServerUser) -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let id = format!("{}-{nanos:08x}", std::process::id());
        let path = match dir {
            Some(dir) => {
                let dir = std::path::absolute(&dir).map_err(Error::io("resolve", &dir))?;
                if dir.exists() {
                    let mut entries =
                        std::fs::read_dir(&dir).map_err(Error::io("read the directory", &dir))?;
                    if entries.next().is_some() {
                        return Err(Error::Invalid(format!(
                            "{} is not empty: give a new or empty directory for the instance",
                            dir.display()
                        )));
                    }
                    std::fs::remove_dir(&dir).map_err(Error::io("replace", &dir))?;
                }
                dir
            }
            None => std::env::temp_dir().join(format!("salvage-recovery-{id}")),
        };
        let socket = Layout { root: path.clone() }
            .socket_dir()
            .join(format!(".s.PGSQL.{}", config::PORT));
        if socket.as_os_str().len() > SOCKET_PATH_MAX {
            return Err(Error::Invalid(format!(
                "the instance's socket {} would be longer than {SOCKET_PATH_MAX} bytes: use a shorter --dir (or TMPDIR)",
                socket.display()
            )));
        }
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .map_err(Error::io("create the directory", &path))?;
        }
        let guard = Self {
            path,
            id,
            cancel: Arc::new(AtomicBool::new(false)),
            armed: true,
        };
        let socket_dir = Layout {
            root: guard.path.clone(),
        }
        .socket_dir();
        std::fs::create_dir(&socket_dir).map_err(Error::io("create the directory", &socket_dir))?;
        set_private(&socket_dir)?;
        user.own(&guard.path)?;
        user.own(&socket_dir)?;
        Ok(guard)
    }

    fn remove(&mut self) -> Result<()> {
        self.armed = false;
        self.cancel.store(true, Ordering::Relaxed);
        let result = match std::fs::remove_dir_all(&self.path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("remove the directory", &self.path)(error))
            }
            _ => Ok(()),
        };
        let file = crate::state::state_dir().join(format!("{}.json", self.id));
        let _ = std::fs::remove_file(file);
        result
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.remove();
        }
    }
}
