//! What steers a restore from outside: a stop request (Ctrl-C, SIGTERM) and the run's
//! journal, through which workers claim tenants and record what each came to.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How long tenants in flight get to finish once a stop is requested; then their
/// transactions are abandoned (the server rolls them back).
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A stop request, shared by everyone who must heed it.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<StopState>);

#[derive(Debug, Default)]
struct StopState {
    requested: AtomicBool,
    notify: Notify,
}

impl Stop {
    /// Asks the restore to stop: no tenant is started after this.
    pub fn request(&self) {
        self.0.requested.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    #[must_use]
    pub fn requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }

    /// Resolves once a stop is requested.
    pub async fn wait(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.requested() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves [`STOP_GRACE`] after a stop is requested.
    pub async fn grace_over(&self) {
        self.wait().await;
        tokio::time::sleep(STOP_GRACE).await;
    }
}

/// This process's share of a journaled run.
#[derive(Debug)]
pub struct Ledger {
    pub run: salvage_journal::Run,
    /// Each plan tenant's position in the run (the plan may hold only the run's unfinished
    /// tenants).
    pub positions: Vec<i32>,
}
