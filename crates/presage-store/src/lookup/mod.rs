//! The embedded lookup file: one immutable, memory-mapped, hash-indexed file per
//! version, answering point lookups by key.
//!
//! A version's predictions are written once and then only read, so the file is
//! built for that: [`LookupWriter`] encodes records from Arrow batches as they arrive,
//! stages them by the hash of their key (spilled to disk past a limit), and lays out
//! the hash index at the end; [`LookupFile`] maps the file and answers a lookup with
//! one probe run in the index — no parsing, no allocation. Where records are short,
//! as most predictions are, each index slot holds its record, so a hit reads one
//! place of the file; otherwise slots point into a data section. The family is cdb,
//! Sparkey and Voldemort's read-only stores.
//!
//! Values are stored typed and fixed-width where the schema allows (integers,
//! floats, booleans, float lists; strings and ranked lists length-prefixed), and a [`Record`] writes
//! the JSON answer at lookup time ([`Record::write_json`]), so the file stays compact
//! and no JSON text is parsed or stored. Opening checks the header only, so a large
//! version opens in microseconds; [`LookupFile::verify`] checks the file's own data
//! checksum. A server does not call it: before switching to a new version it checks
//! the whole file against the sha256 in the version's manifest, reading it through
//! the mapping with [`LookupFile::scan`] (see [`crate::LoadedVersion`]). The layout is
//! described in the `format` module.

mod encode;
mod error;
mod field;
mod format;
mod key;
#[allow(
    unsafe_code,
    reason = "memory-mapping the file needs it; nothing else in the lookup module does"
)]
mod map;
mod reader;
pub(crate) mod record;
mod spill;
mod writer;

pub use error::LookupError;
pub use field::{FieldType, RANKED_ITEM, RANKED_SCORE, ValueField, ranked_list_type};
pub use key::{Key, KeyType};
pub use reader::{GET_MANY_GROUP, Iter, LookupFile};
pub use record::{Float32Values, RankedEntry, RankedItem, RankedItems, Record, Value, Values};
pub use writer::{LookupSummary, LookupWriter};
