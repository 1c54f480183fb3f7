//! Durable file operations: fsync what we write, and the folders we rename in.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary sibling, fsyncs it, and renames it
/// into place, so readers see the old content or the new, never a torn write.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("a file path has a parent");
    let name = path
        .file_name()
        .expect("a file path has a name")
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = fs_err::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs_err::rename(&tmp, path)
    })();
    if written.is_err() {
        // A full disk must not also keep the half-written copy.
        let _ = fs_err::remove_file(&tmp);
    }
    written?;
    sync_dir(dir)
}

/// Fsyncs a folder so a rename or create inside it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs_err::File::open(dir)?.sync_all()
}

/// Fsyncs a file that is already written and closed.
pub(crate) fn sync_file(path: &Path) -> std::io::Result<()> {
    fs_err::File::open(path)?.sync_all()
}
