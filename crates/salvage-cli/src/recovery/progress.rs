//! Progress of a recovery instance on stderr (stdout may be a plan in JSON, or the URL of
//! `snapshot start`): a bar of bytes while the backup is copied and a spinner while WAL is
//! replayed when stderr is a terminal, plain lines every few seconds when it is not.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use salvage_recovery::{RecoveryReporter, ReplayProgress, Step};

const LINE_INTERVAL: Duration = Duration::from_secs(2);

pub struct RecoveryProgress {
    bar: Option<ProgressBar>,
    last_line: Mutex<Instant>,
}

impl RecoveryProgress {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            last_line: Mutex::new(Instant::now()),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// A plain line, at most every few seconds unless `force`.
    fn line(&self, force: bool, text: &str) {
        if self.bar.is_some() {
            return;
        }
        if let Ok(mut last) = self.last_line.lock() {
            if force || last.elapsed() >= LINE_INTERVAL {
                *last = Instant::now();
                eprintln!("{text}");
            }
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("progress templates are constants")
        .progress_chars("=> ")
}

impl RecoveryReporter for RecoveryProgress {
    fn step(&self, step: Step) {
        let text = match &step {
            Step::Copying { from, bytes } => format!(
                "recovery: copying the base backup {from} ({:.1} MiB)",
                *bytes as f64 / f64::from(1 << 20)
            ),
            Step::PgBackRestRestore { stanza } => {
                format!("recovery: pgbackrest restore of stanza {stanza}")
            }
            Step::Starting { version } => format!("recovery: starting PostgreSQL {version}"),
            Step::Replaying => "recovery: replaying WAL to the target".to_owned(),
        };
        if let Some(bar) = &self.bar {
            if let Step::Copying { bytes, .. } = step {
                bar.set_length(bytes);
                bar.set_position(0);
                bar.set_style(style(
                    "{spinner} copying the backup [{bar:30}] {bytes}/{total_bytes} ({eta})",
                ));
            } else {
                bar.set_style(style("{spinner} {msg}  {elapsed_precise}"));
                bar.set_message(text.trim_start_matches("recovery: ").to_owned());
            }
        }
        self.line(true, &text);
    }

    fn copied(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
        self.line(
            false,
            &format!(
                "recovery: copied {:.1} of {:.1} MiB",
                done as f64 / f64::from(1 << 20),
                total as f64 / f64::from(1 << 20)
            ),
        );
    }

    fn replaying(&self, progress: &ReplayProgress) {
        let mut text = format!("replaying WAL: {} files restored", progress.restored);
        if let Some(file) = &progress.last_restored {
            text.push_str(&format!(" (last {file})"));
        }
        if let Some(lsn) = &progress.lsn {
            text.push_str(&format!(", at {lsn}"));
        }
        if let Some(time) = &progress.last_transaction_at {
            text.push_str(&format!(", transactions up to {time}"));
        }
        if let Some(bar) = &self.bar {
            bar.set_message(text.clone());
        }
        self.line(false, &format!("recovery: {text}"));
    }
}
