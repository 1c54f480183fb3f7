use std::collections::BTreeMap;

/// A named feature query: the SQL that yields one row per entity (or per candidate),
/// and the key column naming the entity.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpec {
    /// Its name in the config (`[features.NAME]`).
    pub name: String,
    /// The entity key column.
    pub key: String,
    /// The SQL, with `{{as_of}}` / `{{now}}` placeholders.
    pub sql: String,
    /// Sources whose rows each belong to one entity, and the column naming it:
    /// backtests compute an entity's features from its own rows only.
    pub entity_columns: BTreeMap<String, String>,
}
