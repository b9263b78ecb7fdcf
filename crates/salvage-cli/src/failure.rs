//! Exit codes and the error that carries one.
//!
//! 0: every tenant restored and verified. 1: some tenant failed or verification found a
//! missing row (the others are committed). 2: bad input or usage — unknown tenant ID,
//! unreachable database, bad configuration — and nothing was written. 130: interrupted.

use std::fmt;

pub const SUCCESS: u8 = 0;
pub const SOME_FAILED: u8 = 1;
pub const BAD_INPUT: u8 = 2;
/// Stopped by Ctrl-C (or SIGTERM, SIGHUP): 128 + SIGINT, as a shell reports it.
pub const INTERRUPTED: u8 = 130;

/// An error with the exit code it ends the run with.
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: BAD_INPUT,
            error: error.into(),
        }
    }

    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: SOME_FAILED,
            error: error.into(),
        }
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}: {:#}", self.code, self.error)
    }
}

/// `result.bad_input()?`: any error here means bad input or an unreachable database.
pub trait OrBadInput<T> {
    fn bad_input(self) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> OrBadInput<T> for Result<T, E> {
    fn bad_input(self) -> Result<T, Failure> {
        self.map_err(Failure::bad_input)
    }
}
