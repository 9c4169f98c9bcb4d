//! The export's file: a ZIP with one pretty JSON file per area.

use crate::error::{Error, Result};
use serde_json::Value;
use std::io::Write as _;

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal(e.to_string())
}
/// Builds a ZIP with one `<name>.json` per entry (deflated, pretty JSON).
pub fn build_zip(files: &[(String, Value)]) -> Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, value) in files {
        zip.start_file(format!("{name}.json"), options)
            .map_err(internal)?;
        let bytes = serde_json::to_vec_pretty(value).map_err(internal)?;
        zip.write_all(&bytes).map_err(internal)?;
    }
    Ok(zip.finish().map_err(internal)?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zips_hold_one_json_file_per_area() {
        let zip = build_zip(&[
            ("profile".into(), json!({"a": 1})),
            ("events".into(), json!([1, 2])),
        ])
        .unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        let names: Vec<String> = archive
            .file_names()
            .map(|n| n.unwrap().to_string())
            .collect();
        assert_eq!(names, ["profile.json", "events.json"]);
        let mut s = String::new();
        std::io::Read::read_to_string(&mut archive.by_name("events.json").unwrap(), &mut s)
            .unwrap();
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), json!([1, 2]));
    }
}
