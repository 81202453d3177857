//! Row encodings: Parquet (through Arrow), JSON lines, and the seed's `{"Patches":[...]}` page.
//!
//! Rows reach Arrow through their serde form (`arrow_json`'s serializer), the same form the JSONL
//! format writes, so the two formats cannot drift apart.

use crate::StoreError;
use arrow_json::ReaderBuilder;
use arrow_schema::SchemaRef;
use chrono::{DateTime, SecondsFormat, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use patchtrail_model::PatchRecord;
use serde::Serialize;
use serde_json::{Map, Value};

fn encode_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Encode { what: what.to_string(), reason: e.to_string() }
}

/// Rows buffered before they become one Arrow batch.
const BATCH_ROWS: usize = 8192;

/// A Parquet file being written in memory, batch by batch.
pub struct ParquetPart<T> {
    schema: SchemaRef,
    writer: ArrowWriter<Vec<u8>>,
    pending: Vec<T>,
    rows: u64,
}

impl<T: Serialize> ParquetPart<T> {
    pub fn new(schema: SchemaRef) -> Result<Self, StoreError> {
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(128 * 1024))
            .set_created_by(format!("patchtrail {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).map_err(|e| encode_error("parquet", e))?;
        Ok(ParquetPart { schema, writer, pending: Vec::with_capacity(BATCH_ROWS), rows: 0 })
    }

    pub fn push(&mut self, row: T) -> Result<(), StoreError> {
        self.pending.push(row);
        self.rows += 1;
        if self.pending.len() >= BATCH_ROWS {
            self.flush_pending()?;
        }
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn flush_pending(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut decoder =
            ReaderBuilder::new(self.schema.clone()).with_batch_size(self.pending.len()).build_decoder().map_err(|e| encode_error("arrow", e))?;
        decoder.serialize(&self.pending).map_err(|e| encode_error("arrow", e))?;
        self.pending.clear();
        if let Some(batch) = decoder.flush().map_err(|e| encode_error("arrow", e))? {
            self.writer.write(&batch).map_err(|e| encode_error("parquet", e))?;
        }
        Ok(())
    }

    /// The finished file's bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, StoreError> {
        self.flush_pending()?;
        self.writer.into_inner().map_err(|e| encode_error("parquet", e))
    }
}

/// A JSON-lines file being written in memory.
#[derive(Default)]
pub struct JsonlPart {
    bytes: Vec<u8>,
    rows: u64,
}

impl JsonlPart {
    pub fn push(&mut self, row: &impl Serialize) -> Result<(), StoreError> {
        serde_json::to_writer(&mut self.bytes, row).map_err(|e| encode_error("jsonl", e))?;
        self.bytes.push(b'\n');
        self.rows += 1;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One seed page: the body Step Functions' `PutObject` wrote, `{"Patches":[...]}`, with the
/// SDK-integration member names (`KbId`, `CveIds`) and ISO-8601 `InstalledTime`
/// (`1970-01-01T00:00:00Z` for patches that are not installed).
pub fn seed_page(patches: &[PatchRecord]) -> Vec<u8> {
    let list: Vec<Value> = patches
        .iter()
        .map(|p| {
            let mut m = Map::new();
            m.insert("Classification".into(), Value::String(p.classification.clone()));
            if let Some(cves) = &p.cve_ids {
                m.insert("CveIds".into(), Value::String(cves.clone()));
            }
            m.insert("InstalledTime".into(), Value::String(iso(p.installed_time.unwrap_or(DateTime::UNIX_EPOCH))));
            m.insert("KbId".into(), Value::String(p.kb_id.clone()));
            m.insert("Severity".into(), Value::String(p.severity.clone()));
            m.insert("State".into(), Value::String(p.state.clone()));
            m.insert("Title".into(), Value::String(p.title.clone()));
            Value::Object(m)
        })
        .collect();
    let mut body = Map::new();
    body.insert("Patches".into(), Value::Array(list));
    Value::Object(body).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use patchtrail_model::patches_schema;

    fn patch(kb: &str, installed: Option<DateTime<Utc>>) -> PatchRecord {
        PatchRecord {
            run_id: "r".into(),
            snapshot_time: Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().expect("time"),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            instance_id: "i-0123456789abcdef0".into(),
            kb_id: kb.into(),
            title: "t".into(),
            classification: "Security".into(),
            severity: "Critical".into(),
            state: if installed.is_some() { "Installed".into() } else { "Missing".into() },
            installed_time: installed,
            cve_ids: installed.is_none().then(|| "CVE-2026-0001".to_string()),
        }
    }

    #[test]
    fn seed_page_has_the_seed_shape() {
        let t = Utc.with_ymd_and_hms(2026, 2, 20, 2, 10, 0).single().expect("time");
        let body = String::from_utf8(seed_page(&[patch("KB1", Some(t)), patch("KB2", None)])).expect("utf8");
        assert_eq!(
            body,
            r#"{"Patches":[{"Classification":"Security","InstalledTime":"2026-02-20T02:10:00Z","KbId":"KB1","Severity":"Critical","State":"Installed","Title":"t"},{"Classification":"Security","CveIds":"CVE-2026-0001","InstalledTime":"1970-01-01T00:00:00Z","KbId":"KB2","Severity":"Critical","State":"Missing","Title":"t"}]}"#
        );
    }

    #[test]
    fn parquet_part_holds_every_row() {
        let mut part = ParquetPart::new(patches_schema()).expect("writer");
        for i in 0..(BATCH_ROWS + 5) {
            part.push(patch(&format!("KB{i}"), None)).expect("push");
        }
        assert_eq!(part.rows(), (BATCH_ROWS + 5) as u64);
        let bytes = part.finish().expect("finish");
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(bytes::Bytes::from(bytes)).expect("parquet");
        use parquet::file::reader::FileReader;
        assert_eq!(reader.metadata().file_metadata().num_rows(), (BATCH_ROWS + 5) as i64);
    }
}
