//! One module per subcommand.

pub mod inspect;
pub mod plan;
pub mod restore;
pub mod verify;

use crate::args::Command;
use crate::failure::Failure;

pub async fn run(command: Command) -> Result<u8, Failure> {
    match command {
        Command::Plan(args) => plan::run(&args).await,
        Command::Restore(args) => restore::run(&args).await,
        Command::Verify(args) => verify::run(&args).await,
        Command::Inspect(args) => inspect::run(&args).await,
    }
}
