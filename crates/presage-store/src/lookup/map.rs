//! Mapping a lookup file into memory: the one place the lookup module needs `unsafe`.

use std::path::Path;

use memmap2::{Advice, Mmap};

use super::LookupError;

/// Maps `file` read-only.
///
/// Lookups touch a few bytes at random places, so the kernel is told not to read
/// ahead; [`sequential`] lifts that for a full scan. It is also asked for 2 MiB
/// pages: a lookup reads an index slot (and, if the slot only points, a record) at
/// a random place in a file of hundreds of MiB, and with 4 KiB pages each read is
/// a TLB miss whose page walk costs as much as the read itself. Linux (6.x, on filesystems with large folios
/// such as ext4) then reads the file into 2 MiB folios and maps them whole, but only
/// for pages not already cached in small ones, hence [`drop_cached_pages`] after
/// writing.
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
    #[cfg(target_os = "linux")]
    let _ = map.advise(Advice::HugePage);
    Ok(map)
}

/// Asks the kernel to drop `file`'s clean cached pages (those nobody maps), so the
/// next reader pages it in through a mapping that can use 2 MiB pages. Advice only:
/// errors are ignored.
pub(crate) fn drop_cached_pages(file: &std::fs::File) {
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
}

/// Runs `scan` over the mapping with read-ahead on, then turns it off again.
pub(crate) fn sequential<T>(map: &Mmap, scan: impl FnOnce() -> T) -> T {
    let _ = map.advise(Advice::Sequential);
    let result = scan();
    let _ = map.advise(Advice::Random);
    result
}
