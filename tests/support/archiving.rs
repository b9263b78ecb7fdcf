//! A private PostgreSQL cluster that archives its WAL — `archive_command = 'cp %p DIR/%f'`,
//! and into a pgBackRest repository too when asked — for the point-in-time scenarios: the
//! tests' usual server archives nothing. It is started with `initdb` and `pg_ctl` (as the
//! `postgres` OS user when the tests run as root), on a free port, in a directory of its own,
//! and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The pgBackRest stanza the cluster archives into.
pub const STANZA: &str = "pitr";

pub struct ArchivingCluster {
    /// Everything of this cluster: data, socket, archive, backups, pgBackRest's repository.
    pub root: PathBuf,
    /// The directory `archive_command` copies segments into.
    pub archive: PathBuf,
    /// pgBackRest's configuration, when the cluster archives there too.
    pub pgbackrest_config: Option<PathBuf>,
    /// URL of the `postgres` database.
    pub url: String,
    bin: PathBuf,
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// `program args…`, as the `postgres` OS user when we are root.
pub fn as_postgres(program: impl AsRef<std::ffi::OsStr>) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs `command`, panicking with its output when it fails.
pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Gives `path` and everything under it to the `postgres` OS user (when we are root), so
/// the server and its restore command can read what a test copied.
pub fn give_to_postgres(path: &Path) {
    if running_as_root() {
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path));
    }
}

/// The newest PostgreSQL server binaries: `pg_config --bindir`, else Debian's.
fn server_bin() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort_by_key(|dir| {
        dir.parent()
            .and_then(|version| version.file_name())
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        candidates.insert(
            0,
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()),
        );
    }
    candidates
        .into_iter()
        .rev()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_basebackup").is_file())
        .expect(
            "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup): scripts/test.sh installs them",
        )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free TCP port")
}

/// A new directory for a test, reachable by the `postgres` user.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("salvage-pitr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

impl ArchivingCluster {
    /// initdb, archiving configured, started; with `pgbackrest`, a stanza created too.
    pub fn start(name: &str, pgbackrest: bool) -> Self {
        let root = test_dir(name);
        let archive = root.join("archive");
        for dir in ["archive", "socket", "backups"] {
            std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        }
        let bin = server_bin();
        let port = free_port();
        let pgbackrest_config = pgbackrest.then(|| {
            let version = Command::new("pgbackrest").arg("version").output();
            assert!(
                version.is_ok_and(|output| output.status.success()),
                "pgBackRest is missing: scripts/test.sh installs Debian's pgbackrest package"
            );
            for dir in ["repo", "log", "lock"] {
                std::fs::create_dir_all(root.join("pgbackrest").join(dir)).expect("mkdir");
            }
            let config = root.join("pgbackrest.conf");
            std::fs::write(
                &config,
                format!(
                    "[global]\nrepo1-path={r}/pgbackrest/repo\nlog-path={r}/pgbackrest/log\n\
                     lock-path={r}/pgbackrest/lock\nlog-level-console=warn\nlog-level-file=info\n\
                     start-fast=y\nrepo1-retention-full=9\ncompress-type=gz\n\n\
                     [{STANZA}]\npg1-path={r}/data\npg1-socket-path={r}/socket\npg1-port={port}\n",
                    r = root.display()
                ),
            )
            .expect("write pgbackrest.conf");
            config
        });
        give_to_postgres(&root);
        let data = root.join("data");
        run(as_postgres(bin.join("initdb")).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ]));
        let mut archive_command = format!("cp %p {}/%f", archive.display());
        if let Some(config) = &pgbackrest_config {
            archive_command.push_str(&format!(
                " && pgbackrest --config={} --stanza={STANZA} archive-push %p",
                config.display()
            ));
        }
        let settings = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             wal_level = replica\narchive_mode = on\narchive_command = '{archive_command}'\n\
             max_wal_senders = 10\nfsync = off\nsynchronous_commit = off\n\
             # No transactions but the tests' own: the first commit after a target is the script.\n\
             autovacuum = off\n",
            root.join("socket").display()
        );
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str(&settings);
        std::fs::write(&conf, text).expect("write postgresql.conf");
        run(as_postgres(bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(root.join("server.log"))
            .args(["-w", "-t", "60", "start"]));
        let cluster = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            root,
            archive,
            pgbackrest_config,
            bin,
        };
        if let Some(config) = &cluster.pgbackrest_config {
            run(as_postgres("pgbackrest")
                .arg(format!("--config={}", config.display()))
                .arg(format!("--stanza={STANZA}"))
                .arg("stanza-create"));
        }
        cluster
    }

    /// `pg_basebackup -D DIR ARGS` (DIR under the cluster's backups/), as the server's user.
    pub fn base_backup(&self, name: &str, args: &[&str]) -> PathBuf {
        let dir = self.root.join("backups").join(name);
        run(as_postgres(self.bin.join("pg_basebackup"))
            .arg("-d")
            .arg(&self.url)
            .arg("-D")
            .arg(&dir)
            .args(["-c", "fast"])
            .args(args));
        dir
    }

    /// A full pgBackRest backup.
    pub fn pgbackrest_backup(&self) {
        let config = self
            .pgbackrest_config
            .as_ref()
            .expect("pgBackRest configured");
        run(as_postgres("pgbackrest")
            .arg(format!("--config={}", config.display()))
            .arg(format!("--stanza={STANZA}"))
            .args(["--type=full", "backup"]));
    }

    /// Ends the current WAL segment and waits until the archiver has it; returns its name.
    pub async fn switch_wal(&self, database: &super::TestDatabase) -> String {
        let segment: String = database
            .scalar("SELECT pg_walfile_name(pg_switch_wal())")
            .await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let archived: Option<String> = database
                .scalar("SELECT last_archived_wal::text FROM pg_stat_archiver")
                .await;
            if archived.as_deref() >= Some(segment.as_str()) {
                return segment;
            }
            assert!(
                Instant::now() < deadline,
                "{segment} was not archived within a minute (last: {archived:?}); see {}",
                self.root.join("server.log").display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The WAL segment being written now.
    pub async fn current_segment(database: &super::TestDatabase) -> String {
        // The insert location: with synchronous_commit off (this cluster's setting) the
        // write location can still be in the segment before the one the work just went
        // into, and a "gap" made by removing that segment then removes nothing needed.
        database
            .scalar("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
            .await
    }
}

impl Drop for ArchivingCluster {
    fn drop(&mut self) {
        let _ = as_postgres(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.root.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Processes whose command line mentions `path` (a recovery instance's server has its data
/// directory there).
pub fn processes_under(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(&needle)
                .then(|| format!("{}: {text}", entry.file_name().to_string_lossy()))
        })
        .collect()
}
