//! Ranked-list jobs (recommendations): the feature SQL yields candidate rows
//! `(entity, item, features…)`, the model scores each, and [`TopK`] keeps the
//! `top_k` best items per entity.
//!
//! Candidates arrive in any order (DataFusion streams partitions as they finish),
//! so every entity's best items so far are kept in memory: `top_k` entries of 8
//! bytes per entity, with each distinct item stored once. The answer is the same
//! whatever the arrival order: ties in score are broken by the item's value, and a
//! NaN score ranks below every number.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Int64Array, ListArray, StringArray, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Int64Type};
use presage_store::lookup::{KeyType, ranked_list_type};

/// One kept candidate: its score and the item's index in the item table.
#[derive(Debug, Clone, Copy)]
struct Entry {
    score: f32,
    item: u32,
}

impl Entry {
    /// The score as ranked: NaN below everything.
    fn rank(self) -> f32 {
        if self.score.is_nan() {
            f32::NEG_INFINITY
        } else {
            self.score
        }
    }
}

/// Values that can be keys or items: strings or integers.
pub(crate) trait Value: Eq + Hash + Ord + Clone {
    fn display(&self) -> String;
}

impl Value for Box<str> {
    fn display(&self) -> String {
        self.to_string()
    }
}

impl Value for i64 {
    fn display(&self) -> String {
        self.to_string()
    }
}

/// Distinct items, each stored once.
#[derive(Debug)]
struct ItemTable<I> {
    ids: HashMap<I, u32>,
    values: Vec<I>,
}

impl<I: Value> ItemTable<I> {
    fn id(&mut self, item: &I) -> u32 {
        if let Some(&id) = self.ids.get(item) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(item.clone());
        self.ids.insert(item.clone(), id);
        id
    }
}

/// A candidate item that appeared twice for one entity among its best items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DuplicateCandidate {
    /// The entity key.
    pub key: String,
    /// The repeated item.
    pub item: String,
}

/// The best `k` items of every entity seen so far.
#[derive(Debug)]
pub(crate) struct Lists<K, I> {
    k: usize,
    items: ItemTable<I>,
    entities: HashMap<K, Vec<Entry>>,
}

impl<K: Value, I: Value> Lists<K, I> {
    fn new(k: usize) -> Self {
        Lists {
            k,
            items: ItemTable {
                ids: HashMap::new(),
                values: Vec::new(),
            },
            entities: HashMap::new(),
        }
    }

    /// Whether `a` ranks before `b`.
    fn before(items: &[I], a: Entry, b: Entry) -> bool {
        match a.rank().total_cmp(&b.rank()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => items[a.item as usize] < items[b.item as usize],
        }
    }

    fn add(&mut self, key: K, item: &I, score: f32) -> Result<(), DuplicateCandidate> {
        let item_id = self.items.id(item);
        let entry = Entry {
            score,
            item: item_id,
        };
        let k = self.k;
        let list = self
            .entities
            .entry(key.clone())
            .or_insert_with(|| Vec::with_capacity(k.min(16)));
        if list.iter().any(|kept| kept.item == item_id) {
            return Err(DuplicateCandidate {
                key: key.display(),
                item: item.display(),
            });
        }
        let items = &self.items.values;
        if list.len() == k {
            match list.last() {
                Some(&last) if Self::before(items, entry, last) => {
                    list.pop();
                }
                _ => return Ok(()),
            }
        }
        let at = list.partition_point(|&kept| Self::before(items, kept, entry));
        list.insert(at, entry);
        Ok(())
    }

    /// The lists, by entity key, in batches of at most `batch` entities.
    fn finish(
        self,
        batch: usize,
        key_array: impl Fn(&[K]) -> ArrayRef,
        item_array: impl Fn(Vec<&I>) -> ArrayRef,
        item_type: KeyType,
    ) -> Vec<(ArrayRef, ArrayRef)> {
        let mut entities: Vec<(K, Vec<Entry>)> = self.entities.into_iter().collect();
        entities.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let list_type = ranked_list_type(item_type);
        let DataType::List(entry_field) = &list_type else {
            unreachable!("ranked_list_type is a list");
        };
        let DataType::Struct(entry_fields) = entry_field.data_type() else {
            unreachable!("ranked list entries are structs");
        };
        entities
            .chunks(batch.max(1))
            .map(|chunk| {
                let keys: Vec<K> = chunk.iter().map(|(key, _)| key.clone()).collect();
                let mut offsets = Vec::with_capacity(chunk.len() + 1);
                offsets.push(0i32);
                let mut items = Vec::new();
                let mut scores = Vec::new();
                for (_, list) in chunk {
                    for entry in list {
                        items.push(&self.items.values[entry.item as usize]);
                        scores.push(entry.score);
                    }
                    offsets.push(items.len() as i32);
                }
                let entries = StructArray::new(
                    entry_fields.clone(),
                    vec![item_array(items), Arc::new(Float32Array::from(scores))],
                    None,
                );
                let lists = ListArray::new(
                    entry_field.clone(),
                    OffsetBuffer::new(offsets.into()),
                    Arc::new(entries),
                    None,
                );
                (key_array(&keys), Arc::new(lists) as ArrayRef)
            })
            .collect()
    }
}

/// Best-`k` lists for string or integer entity keys and items.
#[derive(Debug)]
pub(crate) enum TopK {
    StrStr(Lists<Box<str>, Box<str>>),
    StrInt(Lists<Box<str>, i64>),
    IntStr(Lists<i64, Box<str>>),
    IntInt(Lists<i64, i64>),
}

fn strings(values: &[Box<str>]) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values.iter()))
}

#[allow(
    clippy::borrowed_box,
    reason = "`Lists::finish` hands out `&I`, here `I = Box<str>`"
)]
fn string_refs(values: Vec<&Box<str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn ints(values: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

fn int_refs(values: Vec<&i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values.into_iter().copied()))
}

impl TopK {
    /// Lists of at most `k` items for keys of `key_type` and items of `item_type`.
    pub(crate) fn new(k: usize, key_type: KeyType, item_type: KeyType) -> TopK {
        match (key_type, item_type) {
            (KeyType::Str, KeyType::Str) => TopK::StrStr(Lists::new(k)),
            (KeyType::Str, KeyType::Int) => TopK::StrInt(Lists::new(k)),
            (KeyType::Int, KeyType::Str) => TopK::IntStr(Lists::new(k)),
            (KeyType::Int, KeyType::Int) => TopK::IntInt(Lists::new(k)),
        }
    }

    /// Adds a batch of scored candidates. `keys` and `items` are non-null `Utf8` or
    /// `Int64` arrays matching the types given to [`TopK::new`].
    pub(crate) fn add(
        &mut self,
        keys: &ArrayRef,
        items: &ArrayRef,
        scores: &Float32Array,
    ) -> Result<(), DuplicateCandidate> {
        let str_at = |array: &ArrayRef, row: usize| -> Box<str> {
            array.as_string::<i32>().value(row).into()
        };
        let int_at = |array: &ArrayRef, row: usize| array.as_primitive::<Int64Type>().value(row);
        for row in 0..keys.len() {
            let score = scores.value(row);
            match self {
                TopK::StrStr(l) => l.add(str_at(keys, row), &str_at(items, row), score)?,
                TopK::StrInt(l) => l.add(str_at(keys, row), &int_at(items, row), score)?,
                TopK::IntStr(l) => l.add(int_at(keys, row), &str_at(items, row), score)?,
                TopK::IntInt(l) => l.add(int_at(keys, row), &int_at(items, row), score)?,
            }
        }
        Ok(())
    }

    /// Every entity's list, sorted by key, as `(keys, lists)` batches of at most
    /// `batch` entities; lists have the type [`ranked_list_type`].
    pub(crate) fn finish(self, batch: usize) -> Vec<(ArrayRef, ArrayRef)> {
        match self {
            TopK::StrStr(l) => l.finish(batch, strings, string_refs, KeyType::Str),
            TopK::StrInt(l) => l.finish(batch, strings, int_refs, KeyType::Int),
            TopK::IntStr(l) => l.finish(batch, ints, string_refs, KeyType::Str),
            TopK::IntInt(l) => l.finish(batch, ints, int_refs, KeyType::Int),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn str_array(values: &[&str]) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(values.iter().copied()))
    }

    fn lists(top: TopK) -> Vec<(String, Vec<(String, f32)>)> {
        let mut out = Vec::new();
        for (keys, lists) in top.finish(2) {
            let lists = lists.as_list::<i32>();
            for row in 0..keys.len() {
                let entries = lists.value(row);
                let entries = entries.as_struct();
                let items = entries.column(0).as_string::<i32>();
                let scores = entries
                    .column(1)
                    .as_primitive::<arrow::datatypes::Float32Type>();
                out.push((
                    keys.as_string::<i32>().value(row).to_owned(),
                    (0..entries.len())
                        .map(|i| (items.value(i).to_owned(), scores.value(i)))
                        .collect(),
                ));
            }
        }
        out
    }

    #[test]
    fn keeps_the_best_k_in_any_arrival_order() {
        let keys = ["u1", "u1", "u1", "u2", "u1", "u2", "u2"];
        let items = ["a", "b", "c", "a", "d", "b", "c"];
        let scores = [0.1, 0.9, 0.5, 0.3, 0.7, f32::NAN, 0.3];
        let expected = vec![
            (
                "u1".to_owned(),
                vec![("b".to_owned(), 0.9), ("d".to_owned(), 0.7)],
            ),
            (
                "u2".to_owned(),
                vec![("a".to_owned(), 0.3), ("c".to_owned(), 0.3)],
            ),
        ];
        for reversed in [false, true] {
            let mut order: Vec<usize> = (0..keys.len()).collect();
            if reversed {
                order.reverse();
            }
            let mut top = TopK::new(2, KeyType::Str, KeyType::Str);
            for &i in &order {
                top.add(
                    &str_array(&[keys[i]]),
                    &str_array(&[items[i]]),
                    &Float32Array::from(vec![scores[i]]),
                )
                .unwrap();
            }
            assert_eq!(lists(top), expected, "reversed: {reversed}");
        }
    }

    #[test]
    fn a_repeated_candidate_is_an_error() {
        let mut top = TopK::new(3, KeyType::Str, KeyType::Str);
        let err = top
            .add(
                &str_array(&["u1", "u1"]),
                &str_array(&["a", "a"]),
                &Float32Array::from(vec![0.5, 0.4]),
            )
            .unwrap_err();
        assert_eq!(
            err,
            DuplicateCandidate {
                key: "u1".into(),
                item: "a".into()
            }
        );
    }

    #[test]
    fn integer_keys_and_items() {
        let mut top = TopK::new(1, KeyType::Int, KeyType::Int);
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![7, 7, 3]));
        let items: ArrayRef = Arc::new(Int64Array::from(vec![10, 11, 10]));
        top.add(&keys, &items, &Float32Array::from(vec![0.2, 0.8, 0.1]))
            .unwrap();
        let batches = top.finish(10);
        assert_eq!(batches.len(), 1);
        let (keys, lists) = &batches[0];
        assert_eq!(keys.as_primitive::<Int64Type>().values(), &[3, 7]);
        assert_eq!(lists.data_type(), &ranked_list_type(KeyType::Int));
        let second = lists.as_list::<i32>().value(1);
        let item = second
            .as_struct()
            .column(0)
            .as_primitive::<Int64Type>()
            .value(0);
        assert_eq!(item, 11);
    }
}
