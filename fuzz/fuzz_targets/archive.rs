//! The archive reader over arbitrary bytes: as a stream (custom, tar, plain) and as a file
//! opened for random access. Any input may fail, none may panic or hang.
#![no_main]

use std::io::Write;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use salvage_archive::{Archive, Error, scan};

/// One scratch file per fuzzing process.
fn scratch() -> &'static std::path::Path {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let directory = std::env::temp_dir().join(format!("salvage-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("create the scratch directory");
        directory.join("input.dump")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = scan::<_, Error, _>("<fuzz>", data, |_, rows| {
        while let Some(row) = rows.next_row()? {
            let _ = salvage_copy::fields(row).count();
        }
        Ok(())
    });

    let path = scratch();
    let mut file = std::fs::File::create(path).expect("create the scratch file");
    file.write_all(data).expect("write the scratch file");
    drop(file);
    if let Ok(archive) = Archive::open(path) {
        let _ = salvage_archive::schema::catalog(&archive);
        for table in archive.tables() {
            if let Ok(mut rows) = archive.rows(table) {
                while let Ok(Some(_)) = rows.next_row() {}
            }
        }
    }
});
