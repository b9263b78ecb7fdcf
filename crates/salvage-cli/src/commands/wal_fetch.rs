//! `salvage wal-fetch ARCHIVE NAME DEST`: the restore command a recovery instance runs for
//! `--wal-archive`. Exit 0 when the file was written, 1 when the archive does not have it
//! (PostgreSQL's "the archive ends here") or it could not be read — said on stderr, which
//! is the instance's log, where salvage looks for it.

use salvage_recovery::wal::{self, Fetched};

use crate::args::WalFetchArgs;

pub fn run(args: &WalFetchArgs) -> u8 {
    match wal::fetch(&args.archive, &args.name, &args.destination) {
        Ok(Fetched::Restored(_)) => 0,
        Ok(Fetched::NotInArchive) => {
            // Timeline history files are asked for whether they exist or not.
            if !args.name.ends_with(".history") {
                eprintln!("{}{}", wal::NOT_IN_ARCHIVE, args.name);
            }
            1
        }
        Err(error) => {
            eprintln!("{}{error}", wal::HELPER_PREFIX);
            1
        }
    }
}
