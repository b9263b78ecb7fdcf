//! The server process: started directly (`postgres -D data -c config_file=…`), in a process
//! group of its own so a Ctrl-C at the terminal reaches salvage (which stops it in order) and
//! not the server, with its stderr — the log — in the instance's directory; stopped with
//! `pg_ctl stop` (fast, then immediate), which waits until the postmaster is gone.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::binaries::{ServerBinaries, ServerUser};
use crate::config::Layout;
use crate::{Error, Result};

/// A running server. Dropping it stops it, unless it was [`Server::detach`]ed.
#[derive(Debug)]
pub(crate) struct Server {
    child: Option<Child>,
    pub pid: u32,
    data: PathBuf,
    bin_dir: PathBuf,
    user: ServerUser,
    armed: bool,
}

impl Server {
    pub(crate) fn start(
        binaries: &ServerBinaries,
        layout: &Layout,
        user: ServerUser,
    ) -> Result<Self> {
        let log_path = layout.log();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(Error::io("create", &log_path))?;
        let log_err = log.try_clone().map_err(Error::io("open", &log_path))?;
        let program = binaries.program("postgres");
        let mut command = Command::new(&program);
        command
            .arg("-D")
            .arg(layout.data())
            .arg("-c")
            .arg(format!("config_file={}", layout.config_file().display()))
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .current_dir(&layout.root);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        user.apply(&mut command);
        let child = command
            .spawn()
            .map_err(|error| Error::program(program.display().to_string(), error.to_string()))?;
        Ok(Self {
            pid: child.id(),
            child: Some(child),
            data: layout.data(),
            bin_dir: binaries.dir.clone(),
            user,
            armed: true,
        })
    }

    /// Whether the server has exited (and then how).
    pub(crate) fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(error) => Some(error.to_string()),
        }
    }

    /// Leaves the server running when this value goes (`salvage snapshot start`).
    pub(crate) fn detach(mut self) {
        self.armed = false;
        // Dropping a Child neither kills nor waits: the server goes on, adopted by init.
        self.child = None;
    }

    /// Stops the server and waits until it is gone.
    pub(crate) fn stop(mut self) -> Result<()> {
        self.armed = false;
        let result = stop(&self.bin_dir, &self.data, self.user, self.pid);
        if let Some(mut child) = self.child.take() {
            // pg_ctl waited for the postmaster to go; reap it. If it is somehow still there,
            // kill it.
            if !wait_for(&mut child, Duration::from_secs(5)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        result
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            let _ = stop(&self.bin_dir, &self.data, self.user, self.pid);
            if let Some(mut child) = self.child.take() {
                if !wait_for(&mut child, Duration::from_secs(5)) {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }
}

fn wait_for(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Stops the server of `data` (`pg_ctl stop -m fast`, then `-m immediate`), as `user`. A
/// server that is not running is fine.
pub(crate) fn stop(bin_dir: &Path, data: &Path, user: ServerUser, pid: u32) -> Result<()> {
    if !data.join("postmaster.pid").exists() && !crate::state::process_exists(pid) {
        return Ok(());
    }
    let pg_ctl = bin_dir.join("pg_ctl");
    let mut last = String::new();
    for mode in ["fast", "immediate"] {
        let mut command = Command::new(&pg_ctl);
        command
            .args(["stop", "-w", "-t", "60", "-m", mode, "-D"])
            .arg(data)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        user.apply(&mut command);
        match command.output() {
            Ok(output) if output.status.success() => return Ok(()),
            Ok(output) => {
                String::from_utf8_lossy(&output.stderr)
                    .trim()
                    .clone_into(&mut last);
                if !data.join("postmaster.pid").exists() || !crate::state::process_exists(pid) {
                    return Ok(());
                }
            }
            Err(error) => last = error.to_string(),
        }
    }
    Err(Error::program(
        pg_ctl.display().to_string(),
        format!("could not stop the server of {}: {last}", data.display()),
    ))
}
