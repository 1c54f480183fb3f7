use super::{EmbeddedStore, LOOKUP_FILE, check_sha256, sha256_bytes, verify_version_file};
use crate::lookup::{Key, LookupFile};
use crate::{Manifest, StoreError, VersionId};

/// A published version opened for lookups.
pub struct LoadedVersion {
    manifest: Manifest,
    lookup: LookupFile,
}

impl LoadedVersion {
    /// Opens a version: reads its manifest, checks the lookup file against the
    /// manifest's sha256 (a corrupt or truncated version is refused), maps it.
    pub(super) fn open(
        store: &EmbeddedStore,
        job: &str,
        id: VersionId,
    ) -> Result<LoadedVersion, StoreError> {
        let manifest = store.manifest(job, id)?;
        let path = store.version_dir(job, id).join(LOOKUP_FILE);
        let expected = manifest
            .files
            .iter()
            .find(|f| f.name == LOOKUP_FILE)
            .map(|f| f.sha256.clone())
            .unwrap_or_default();
        // Hashing through the mapping pages the file in as the lookups will use it
        // (see `LookupFile::scan`); a file too damaged to map gets the checksum error.
        let lookup = match LookupFile::open(&path) {
            Ok(lookup) => {
                let actual = lookup.scan(sha256_bytes);
                check_sha256(job, id, &path, &expected, actual)?;
                lookup
            }
            Err(_) => {
                verify_version_file(job, id, &path, &expected)?;
                LookupFile::open(&path)?
            }
        };
        Ok(LoadedVersion { manifest, lookup })
    }

    /// The version's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The version id.
    pub fn id(&self) -> VersionId {
        self.manifest.id
    }

    /// Writes the prediction for a key (as text, the way HTTP and RESP receive it) as
    /// a JSON object into `out`; false when the key is absent.
    pub fn write_prediction_json(&self, key: &str, out: &mut Vec<u8>) -> bool {
        let Some(key) = Key::parse(self.lookup.key_type(), key) else {
            return false;
        };
        match self.lookup.get(key) {
            Some(record) => {
                record.write_json(out);
                true
            }
            None => false,
        }
    }

    /// The lookup file, for callers that need typed values.
    pub fn lookup(&self) -> &LookupFile {
        &self.lookup
    }
}
