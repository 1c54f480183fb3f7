//! Mapping a lookup file into memory: the one place the lookup module needs `unsafe`.

use std::path::Path;

use memmap2::{Advice, Mmap};

use super::LookupError;

/// Maps `file` read-only.
///
/// Lookups touch a few bytes at random places, so the kernel is told not to read
/// ahead; [`sequential`] lifts that for a full scan.
pub(crate) fn map(file: &fs_err::File, path: &Path) -> Result<Mmap, LookupError> {
    // SAFETY: a mapping is only sound while nobody modifies or truncates the file.
    // Lookup files are immutable by contract: the writer builds them in a staging
    // folder and nothing writes to a file after `finish`; a version folder is only
    // ever removed whole, which leaves existing mappings valid (the inode lives on).
    // Readers never see torn data, and every read through the map is bounds-checked
    // against the length the file had when mapped.
    let map = unsafe { Mmap::map(file.file()) }.map_err(|e| LookupError::io(path, e))?;
    // Advice only tunes paging; a kernel that refuses it still answers correctly.
    let _ = map.advise(Advice::Random);
    Ok(map)
}

/// Runs `scan` over the mapping with read-ahead on, then turns it off again.
pub(crate) fn sequential<T>(map: &Mmap, scan: impl FnOnce() -> T) -> T {
    let _ = map.advise(Advice::Sequential);
    let result = scan();
    let _ = map.advise(Advice::Random);
    result
}
