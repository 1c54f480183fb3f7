use super::{EmbeddedStore, LOOKUP_FILE, check_sha256, sha256_bytes, verify_version_file};
use crate::lookup::{GET_MANY_GROUP, Key, KeyType, LookupFile};
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

    /// Writes the prediction of every key of `keys` as a JSON object and calls
    /// `each` with the key's index and the object, `None` when absent; in order.
    /// Faster than one [`LoadedVersion::write_prediction_json`] per key (see
    /// [`LookupFile::get_many`]).
    pub fn write_predictions_json<K: AsRef<str>>(
        &self,
        keys: &[K],
        mut each: impl FnMut(usize, Option<&[u8]>),
    ) {
        let key_type = self.lookup.key_type();
        // A key that does not parse as the file's type becomes a key of the other
        // type, which is absent from any file: it stays in place and misses.
        let unparsable = match key_type {
            KeyType::Int => Key::Str(""),
            KeyType::Str => Key::Int(0),
        };
        let mut parsed = [unparsable; GET_MANY_GROUP];
        let mut json = Vec::with_capacity(128);
        for (group, chunk) in keys.chunks(GET_MANY_GROUP).enumerate() {
            for (key, text) in parsed.iter_mut().zip(chunk) {
                *key = Key::parse(key_type, text.as_ref()).unwrap_or(unparsable);
            }
            self.lookup
                .get_many(&parsed[..chunk.len()], |i, record| match record {
                    Some(record) => {
                        json.clear();
                        record.write_json(&mut json);
                        each(group * GET_MANY_GROUP + i, Some(&json));
                    }
                    None => each(group * GET_MANY_GROUP + i, None),
                });
        }
    }

    /// The lookup file, for callers that need typed values.
    pub fn lookup(&self) -> &LookupFile {
        &self.lookup
    }
}
