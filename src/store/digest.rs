//! Content digests of data files: which rows a file holds, whatever their order.
//!
//! A data file's SHA-256 proves its bytes, and says nothing once compaction has rewritten its
//! rows into new files and deleted it: row counts per day were all `vigil verify` could check
//! then, and a forged compaction with equal counts passed. The content digest closes that gap.
//! It is a homomorphic multiset hash, LtHash with the parameters of lthash16 (Lewi et al.,
//! "Securing Update Propagation with Homomorphic Hashing", 2019: 1024 lanes of 16 bits,
//! about 200 bits of security): each row's canonical bytes (after the column names and kinds)
//! are expanded by BLAKE3 (in a key-derivation context of its own: domain separation, no
//! secret) to 2 KiB, read as 1024 little-endian `u16` lanes, and added lane-wise,
//! wrapping. The digest of a set of files is the sum of their digests, so verify checks that a
//! compaction's new files (digests recomputed from their rows) hold exactly the rows of the
//! files they replaced (digests recorded when those were written, in commits kept by the hash
//! chain), long after the replaced files are gone. Sums of plain hashes would not do: with
//! many rows to choose, Wagner's generalized birthday attack finds a forged set with a 256-bit
//! sum quickly; lattice lanes resist it.

use std::fmt;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Int32Array, ListArray, MapArray, StringArray,
    TimestampNanosecondArray, UInt16Array,
};
use datafusion::arrow::datatypes::{
    DataType, Int32Type, TimeUnit, TimestampNanosecondType, UInt16Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::commit::DataFile;
use super::StoreError;

const LANES: usize = 1024;
/// Prefix of the digest's text form: the construction, so another can replace it later.
const PREFIX: &str = "lthash16-blake3:";
/// BLAKE3 key-derivation context: row digests are a hash of their own.
const CONTEXT: &str = "vigil 2026-11-28 data file row content digest v1";

/// The sum of the row hashes of some rows.
#[derive(Clone, PartialEq, Eq)]
pub struct ContentDigest {
    lanes: Box<[u16; LANES]>,
}

impl Default for ContentDigest {
    fn default() -> Self {
        ContentDigest {
            lanes: Box::new([0; LANES]),
        }
    }
}

impl fmt::Debug for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_string();
        write!(f, "ContentDigest({}…)", &text[..PREFIX.len() + 12])
    }
}

impl fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes: Vec<u8> = self.lanes.iter().flat_map(|l| l.to_le_bytes()).collect();
        write!(f, "{PREFIX}{}", STANDARD_NO_PAD.encode(bytes))
    }
}

impl std::str::FromStr for ContentDigest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let body = s
            .strip_prefix(PREFIX)
            .ok_or_else(|| format!("a content digest starts with `{PREFIX}`"))?;
        let bytes = STANDARD_NO_PAD
            .decode(body)
            .map_err(|e| format!("a content digest is base64: {e}"))?;
        if bytes.len() != LANES * 2 {
            return Err(format!(
                "a content digest holds {} bytes, not {}",
                bytes.len(),
                LANES * 2
            ));
        }
        let mut d = ContentDigest::default();
        for (lane, pair) in d.lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            *lane = u16::from_le_bytes([pair[0], pair[1]]);
        }
        Ok(d)
    }
}

impl ContentDigest {
    /// Adds the rows of another digest (the union of two sets of rows).
    pub fn add(&mut self, other: &ContentDigest) {
        for (a, b) in self.lanes.iter_mut().zip(other.lanes.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    /// Adds every row of `batch`.
    pub fn add_batch(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        let columns = batch
            .columns()
            .iter()
            .map(|c| Column::of(c.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        // The column names and kinds go into every row's hash: the same values under swapped
        // or retyped columns are other rows. (0xFF and 0xFE never occur in UTF-8 names.)
        let mut base = base_hasher().clone();
        for (field, c) in batch.schema().fields().iter().zip(&columns) {
            base.update(field.name().as_bytes());
            base.update(&[0xFF]);
            base.update(c.kind().as_bytes());
            base.update(&[0xFE]);
        }
        let mut row = Vec::with_capacity(1024);
        let mut expanded = [0u8; LANES * 2];
        for i in 0..batch.num_rows() {
            row.clear();
            for c in &columns {
                c.encode(i, &mut row);
            }
            let mut h = base.clone();
            h.update(&row);
            h.finalize_xof().fill(&mut expanded);
            for (lane, pair) in self.lanes.iter_mut().zip(expanded.chunks_exact(2)) {
                *lane = lane.wrapping_add(u16::from_le_bytes([pair[0], pair[1]]));
            }
        }
        Ok(())
    }
}

fn base_hasher() -> &'static blake3::Hasher {
    static BASE: OnceLock<blake3::Hasher> = OnceLock::new();
    BASE.get_or_init(|| blake3::Hasher::new_derive_key(CONTEXT))
}

/// A column of a data file, typed once per batch. Every value is written with a presence byte
/// and, for text, its length, so no two different rows have the same bytes.
enum Column<'a> {
    Text(&'a StringArray),
    Time(&'a TimestampNanosecondArray),
    Bool(&'a BooleanArray),
    I32(&'a Int32Array),
    U16(&'a UInt16Array),
    TextList(&'a ListArray, &'a StringArray),
    TextMap(&'a MapArray, &'a StringArray, &'a StringArray),
}

impl<'a> Column<'a> {
    fn of(a: &'a dyn Array) -> Result<Self, ArrowError> {
        let unsupported = || {
            ArrowError::NotYetImplemented(format!(
                "content digest of a column of type {}",
                a.data_type()
            ))
        };
        Ok(match a.data_type() {
            DataType::Utf8 => Column::Text(a.as_string::<i32>()),
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                Column::Time(a.as_primitive::<TimestampNanosecondType>())
            }
            DataType::Boolean => Column::Bool(a.as_boolean()),
            DataType::Int32 => Column::I32(a.as_primitive::<Int32Type>()),
            DataType::UInt16 => Column::U16(a.as_primitive::<UInt16Type>()),
            DataType::List(item) if item.data_type() == &DataType::Utf8 => {
                let list = a.as_list::<i32>();
                Column::TextList(list, list.values().as_string::<i32>())
            }
            DataType::Map(..) => {
                let map = a.as_map();
                let (keys, values) = (map.keys(), map.values());
                if keys.data_type() != &DataType::Utf8 || values.data_type() != &DataType::Utf8 {
                    return Err(unsupported());
                }
                Column::TextMap(map, keys.as_string::<i32>(), values.as_string::<i32>())
            }
            _ => return Err(unsupported()),
        })
    }

    /// A stable name of the column's kind (not Arrow's type names, which may change between
    /// versions and would change every digest with them).
    fn kind(&self) -> &'static str {
        match self {
            Column::Text(_) => "text",
            Column::Time(_) => "time_ns",
            Column::Bool(_) => "bool",
            Column::I32(_) => "i32",
            Column::U16(_) => "u16",
            Column::TextList(..) => "text_list",
            Column::TextMap(..) => "text_map",
        }
    }

    fn encode(&self, i: usize, out: &mut Vec<u8>) {
        let present = |a: &dyn Array, out: &mut Vec<u8>| {
            let valid = a.is_valid(i);
            out.push(u8::from(valid));
            valid
        };
        match self {
            Column::Text(a) => {
                if present(*a, out) {
                    text(a, i, out);
                }
            }
            Column::Time(a) => {
                if present(*a, out) {
                    out.extend_from_slice(&a.value(i).to_le_bytes());
                }
            }
            Column::Bool(a) => {
                if present(*a, out) {
                    out.push(u8::from(a.value(i)));
                }
            }
            Column::I32(a) => {
                if present(*a, out) {
                    out.extend_from_slice(&a.value(i).to_le_bytes());
                }
            }
            Column::U16(a) => {
                if present(*a, out) {
                    out.extend_from_slice(&a.value(i).to_le_bytes());
                }
            }
            Column::TextList(list, items) => {
                if present(*list, out) {
                    let offsets = list.value_offsets();
                    let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                    out.extend_from_slice(&((end - start) as u32).to_le_bytes());
                    for j in start..end {
                        out.push(u8::from(items.is_valid(j)));
                        if items.is_valid(j) {
                            text(items, j, out);
                        }
                    }
                }
            }
            Column::TextMap(map, keys, values) => {
                if present(*map, out) {
                    let offsets = map.value_offsets();
                    let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                    out.extend_from_slice(&((end - start) as u32).to_le_bytes());
                    for j in start..end {
                        text(keys, j, out);
                        out.push(u8::from(values.is_valid(j)));
                        if values.is_valid(j) {
                            text(values, j, out);
                        }
                    }
                }
            }
        }
    }
}

fn text(a: &StringArray, i: usize, out: &mut Vec<u8>) {
    let v = a.value(i).as_bytes();
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    out.extend_from_slice(v);
}

/// The content digest of a Parquet data file, recomputed from its rows, and how many rows it
/// holds (the digest alone does not pin the count: lanes wrap, so 65,536 copies of a row add
/// nothing).
pub fn of_file(path: &std::path::Path) -> Result<(ContentDigest, u64), ArrowError> {
    let file = std::fs::File::open(path)?;
    of_parquet(ParquetRecordBatchReaderBuilder::try_new(file)?)
}

/// The content digest and row count of a Parquet file whose footer is already read (verify
/// checks the schema from the same footer).
pub fn of_parquet<T: datafusion::parquet::file::reader::ChunkReader + 'static>(
    builder: ParquetRecordBatchReaderBuilder<T>,
) -> Result<(ContentDigest, u64), ArrowError> {
    let reader = builder.with_batch_size(8192).build()?;
    let mut d = ContentDigest::default();
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        d.add_batch(&batch)?;
    }
    Ok((d, rows))
}

/// The sum of the files' content digests; `None` when one of them has none.
pub(super) fn sum_content<'a>(
    files: impl Iterator<Item = &'a DataFile>,
) -> Result<Option<ContentDigest>, StoreError> {
    let mut sum = ContentDigest::default();
    for f in files {
        let Some(text) = &f.content else {
            return Ok(None);
        };
        let d: ContentDigest = text.parse().map_err(|e: String| {
            StoreError::Damaged(format!(
                "the content digest of {} is unreadable: {e}",
                f.path
            ))
        })?;
        sum.add(&d);
    }
    Ok(Some(sum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventBatchBuilder, SourceKind};

    fn event(i: i64) -> Event {
        let mut e = Event::new(SourceKind::Vault, "vault_audit", format!("u{i}"), i);
        e.actor_id = Some(format!("actor-{}", i % 3));
        e.actor_groups = vec!["a".into(), format!("g{i}")];
        e.attributes.insert("k".into(), format!("v{i}"));
        e.raw_event = (i % 2 == 0).then(|| format!("{{\"n\":{i}}}"));
        e
    }

    fn batch(events: &[Event]) -> RecordBatch {
        let mut b = EventBatchBuilder::new(7);
        for e in events {
            b.push(e);
        }
        b.finish().unwrap()
    }

    fn digest(events: &[Event]) -> ContentDigest {
        let mut d = ContentDigest::default();
        d.add_batch(&batch(events)).unwrap();
        d
    }

    #[test]
    fn order_and_batching_do_not_matter_content_does() {
        let rows: Vec<Event> = (0..20).map(event).collect();
        let whole = digest(&rows);
        let mut reversed = rows.clone();
        reversed.reverse();
        assert_eq!(digest(&reversed), whole);
        let mut parts = digest(&rows[..7]);
        parts.add(&digest(&rows[7..]));
        assert_eq!(parts, whole, "the digest of a union is the sum");
        // Slices of one batch (as compaction writes them) add up to the whole.
        let b = batch(&rows);
        let mut sliced = ContentDigest::default();
        sliced.add_batch(&b.slice(0, 11)).unwrap();
        sliced.add_batch(&b.slice(11, 9)).unwrap();
        assert_eq!(sliced, whole);
        // The same bytes under swapped column names (actors read as secrets) are other rows.
        let schema = b.schema();
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        let (a, r) = (
            schema.index_of("actor_id").unwrap(),
            schema.index_of("resource_name").unwrap(),
        );
        fields.swap(a, r);
        let columns = b.columns().to_vec();
        let swapped = RecordBatch::try_new(
            std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
            columns,
        )
        .unwrap();
        let mut renamed = ContentDigest::default();
        renamed.add_batch(&swapped).unwrap();
        assert_ne!(renamed, whole);

        let mut changed = rows.clone();
        changed[3].actor_id = Some("someone-else".into());
        assert_ne!(digest(&changed), whole);
        // A value moved between columns, or a list item split in two, is another row.
        let mut moved = rows.clone();
        moved[4].actor_groups = vec!["ag4".into()];
        assert_ne!(digest(&moved), whole);
        let mut fewer = rows.clone();
        fewer.pop();
        assert_ne!(digest(&fewer), whole);
        let mut twice = rows.clone();
        twice.push(rows[0].clone());
        assert_ne!(digest(&twice), whole, "a duplicated row changes the digest");
    }

    #[test]
    fn text_form_round_trips_and_a_parquet_file_gives_the_same_digest() {
        let rows: Vec<Event> = (0..50).map(event).collect();
        let d = digest(&rows);
        let text = d.to_string();
        assert!(text.starts_with(PREFIX));
        assert_eq!(text.parse::<ContentDigest>().unwrap(), d);
        assert!("sha256:00".parse::<ContentDigest>().is_err());
        assert!(format!("{PREFIX}AAAA").parse::<ContentDigest>().is_err());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        let b = batch(&rows);
        let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            b.schema(),
            None,
        )
        .unwrap();
        w.write(&b.slice(0, 20)).unwrap();
        w.write(&b.slice(20, 30)).unwrap();
        w.close().unwrap();
        assert_eq!(of_file(&path).unwrap(), (d, 50));
    }
}
