//! Progress on the terminal: indicatif bars when stdout is a terminal (an overall bar of
//! tenants and rows, and one bar per running tenant), plain lines every few seconds when it is
//! not (a log file, CI). The library crates report through their traits; only this module
//! draws.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use salvage_catalog::QualifiedName;
use salvage_closure::PlanReporter;
use salvage_merge::{RestoreReporter, TenantOutcome, TenantStatus};
use salvage_verify::diff::DiffReporter;
use salvage_verify::{TenantCheck, VerifyReporter};

use crate::output;

/// How often plain progress lines are written.
const LINE_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    Bars,
    Lines,
}

impl Display {
    pub fn detect() -> Self {
        if std::io::stdout().is_terminal() {
            Self::Bars
        } else {
            Self::Lines
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("progress templates are constants")
        .progress_chars("=> ")
}

/// A ticking spinner on stdout with `template`, showing `message` first; none off a terminal.
fn spinner(display: Display, template: &str, message: &'static str) -> Option<ProgressBar> {
    (display == Display::Bars).then(|| {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
        bar.set_style(style(template));
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    })
}

/// A spinner naming the table being read while the plan is computed.
pub struct PlanProgress {
    spinner: Option<ProgressBar>,
}

impl PlanProgress {
    pub fn new(display: Display) -> Self {
        Self {
            spinner: spinner(display, "{spinner} planning: {msg}", ""),
        }
    }

    pub fn finish(&self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }
}

impl PlanReporter for PlanProgress {
    fn reading(&self, table: &QualifiedName) {
        if let Some(spinner) = &self.spinner {
            spinner.set_message(format!("reading {table}"));
        }
    }
}

/// A spinner saying what a diff is doing: reading both sides, then which table it compares.
pub struct DiffProgress {
    spinner: Option<ProgressBar>,
}

impl DiffProgress {
    pub fn new(display: Display) -> Self {
        Self {
            spinner: spinner(
                display,
                "{spinner} diff: {msg}  {elapsed_precise}",
                "reading both catalogs",
            ),
        }
    }

    pub fn finish(&self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }

    fn say(&self, message: String) {
        if let Some(spinner) = &self.spinner {
            spinner.set_message(message);
        }
    }
}

impl DiffReporter for DiffProgress {
    fn reading(&self, tenants: usize) {
        self.say(format!(
            "reading the rows of {} in the snapshot and in live",
            output::counted(tenants as u64, "tenant")
        ));
    }

    fn comparing(&self, table: &QualifiedName, number: usize, tables: usize) {
        self.say(format!("comparing {table} (table {number} of {tables})"));
    }
}

/// Restore progress.
pub struct RestoreProgress {
    display: Display,
    multi: MultiProgress,
    overall: ProgressBar,
    tenant_bars: Mutex<HashMap<String, ProgressBar>>,
    /// Rows each running tenant has copied in its current attempt (to undo on a retry).
    copied: Mutex<HashMap<String, u64>>,
    total_tenants: u64,
    total_rows: u64,
    rows: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
}

impl RestoreProgress {
    pub fn new(display: Display, tenants: u64, rows: u64) -> Self {
        let multi = MultiProgress::with_draw_target(match display {
            Display::Bars => ProgressDrawTarget::stdout(),
            Display::Lines => ProgressDrawTarget::hidden(),
        });
        let overall = multi.add(ProgressBar::new(rows));
        overall.set_style(style(
            "{spinner} restoring [{bar:30}] {pos}/{len} rows  {msg}  {elapsed_precise} (eta {eta})",
        ));
        overall.set_message(format!("0/{tenants} tenants"));
        if display == Display::Bars {
            overall.enable_steady_tick(Duration::from_millis(200));
        }
        Self {
            display,
            multi,
            overall,
            tenant_bars: Mutex::new(HashMap::new()),
            copied: Mutex::new(HashMap::new()),
            total_tenants: tenants,
            total_rows: rows,
            rows: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
        }
    }

    fn message(&self) -> String {
        let failed = self.failed.load(Ordering::Relaxed);
        let running = self.tenant_bars.lock().map_or(0, |bars| bars.len());
        let mut text = format!(
            "{}/{}",
            output::number(self.done.load(Ordering::Relaxed)),
            output::counted(self.total_tenants, "tenant")
        );
        if running > 0 {
            text.push_str(&format!(", {running} running"));
        }
        if failed > 0 {
            text.push_str(&format!(", {failed} failed"));
        }
        text
    }

    /// A line for logs, at most every few seconds (or always when `force`).
    fn line(&self, force: bool) {
        if self.display != Display::Lines {
            return;
        }
        let Ok(mut last) = self.last_line.lock() else {
            return;
        };
        if !force && last.elapsed() < LINE_INTERVAL {
            return;
        }
        *last = Instant::now();
        println!(
            "progress: {}, {}/{} rows, {:.1}s elapsed",
            self.message(),
            output::number(self.rows.load(Ordering::Relaxed)),
            output::number(self.total_rows),
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Prints a line above the bars (or plainly), redacted.
    fn println(&self, text: &str) {
        match self.display {
            Display::Bars => {
                let _ = self.multi.println(salvage_pg::redact(text));
            }
            Display::Lines => output::print(&format!("{text}\n")),
        }
    }

    pub fn finish(&self) {
        self.overall.set_message(self.message());
        self.overall.finish_and_clear();
        self.line(true);
    }
}

impl RestoreReporter for RestoreProgress {
    fn tenant_started(&self, tenant: &str, label: Option<&str>, rows: u64, attempt: u32) {
        if let Ok(mut copied) = self.copied.lock() {
            if let Some(previous) = copied.insert(tenant.to_owned(), 0) {
                // A retry reads its rows again.
                self.rows.fetch_sub(previous, Ordering::Relaxed);
                self.overall.set_position(self.rows.load(Ordering::Relaxed));
            }
        }
        if self.display == Display::Bars {
            if let Ok(mut bars) = self.tenant_bars.lock() {
                let bar = bars.entry(tenant.to_owned()).or_insert_with(|| {
                    let bar = self.multi.add(ProgressBar::new(rows));
                    bar.set_style(style("  {prefix:>12} [{bar:20}] {pos}/{len} rows {msg}"));
                    bar.set_prefix(tenant.to_owned());
                    bar
                });
                bar.set_position(0);
                let mut message = label.map(ToOwned::to_owned).unwrap_or_default();
                if attempt > 1 {
                    message.push_str(&format!(" (attempt {attempt})"));
                }
                bar.set_message(message);
            }
        }
        self.overall.set_message(self.message());
    }

    fn rows_copied(&self, tenant: &str, rows: u64) {
        if let Ok(mut copied) = self.copied.lock() {
            *copied.entry(tenant.to_owned()).or_default() += rows;
        }
        let total = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        self.overall.set_position(total);
        if let Some(bar) = self
            .tenant_bars
            .lock()
            .ok()
            .and_then(|bars| bars.get(tenant).cloned())
        {
            bar.inc(rows);
        }
        self.line(false);
    }

    fn tenant_retrying(&self, tenant: &str, attempt: u32, reason: &str) {
        self.println(&format!(
            "retrying tenant {tenant} after attempt {attempt}: {reason}"
        ));
    }

    fn tenant_finished(&self, outcome: &TenantOutcome) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut bars) = self.tenant_bars.lock() {
            if let Some(bar) = bars.remove(&outcome.tenant) {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        }
        if let Ok(mut copied) = self.copied.lock() {
            copied.remove(&outcome.tenant);
        }
        let label = outcome
            .label
            .as_deref()
            .map(|label| format!(" ({label})"))
            .unwrap_or_default();
        if matches!(outcome.status, TenantStatus::Failed { .. }) {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        // Off a terminal the summary at the end lists every tenant: a line here would say
        // each one twice. On a terminal, the bars are cleared and this line stays.
        if self.display == Display::Bars {
            match &outcome.status {
                TenantStatus::Restored => self.println(&format!(
                    "restored tenant {}{label}: {} in {:.2}s",
                    outcome.tenant,
                    output::count(outcome.inserted(), "row inserted", "rows inserted"),
                    outcome.elapsed.as_secs_f64()
                )),
                TenantStatus::Failed { error } => self.println(&format!(
                    "FAILED tenant {}{label}, rolled back: {error}",
                    outcome.tenant
                )),
                TenantStatus::Interrupted | TenantStatus::Elsewhere => {}
            }
        }
        self.overall.set_message(self.message());
        self.line(false);
    }
}

/// Verification progress: a bar over tenants.
pub struct VerifyProgress {
    display: Display,
    bar: ProgressBar,
    total: u64,
    done: AtomicU64,
    /// Checked and found incomplete or unreadable.
    failed: AtomicU64,
    last_line: Mutex<Instant>,
}

impl VerifyProgress {
    pub fn new(display: Display, tenants: u64) -> Self {
        let bar = ProgressBar::with_draw_target(
            Some(tenants),
            match display {
                Display::Bars => ProgressDrawTarget::stdout(),
                Display::Lines => ProgressDrawTarget::hidden(),
            },
        );
        bar.set_style(style(
            "{spinner} verifying [{bar:30}] {pos}/{len} tenants  {elapsed_precise}",
        ));
        Self {
            display,
            bar,
            total: tenants,
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_line: Mutex::new(Instant::now()),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl VerifyReporter for VerifyProgress {
    fn tenant_checked(&self, check: &TenantCheck) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if !check.passed() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.bar.inc(1);
        if self.display == Display::Lines {
            if let Ok(mut last) = self.last_line.lock() {
                if last.elapsed() >= LINE_INTERVAL || done == self.total {
                    *last = Instant::now();
                    // Checked, not passed: the summary says how many passed.
                    let failed = self.failed.load(Ordering::Relaxed);
                    println!(
                        "checked {}/{}{}",
                        output::number(done),
                        output::counted(self.total, "tenant"),
                        if failed > 0 {
                            format!(", {} incomplete", output::number(failed))
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
        // Off a terminal the summary names every tenant that failed; on one, the bar is
        // cleared and this line stays.
        if !check.passed() && self.display == Display::Bars {
            let text = match &check.error {
                Some(error) => format!("could not verify tenant {}: {error}", check.tenant),
                None => format!(
                    "tenant {}: {} missing in live",
                    check.tenant,
                    output::count(check.missing(), "snapshot row", "snapshot rows")
                ),
            };
            self.bar.println(salvage_pg::redact(&text));
        }
    }
}
