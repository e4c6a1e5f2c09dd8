//! Any bytes as a CSV input: records or one error naming a line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_core::input::{InputFormat, ReaderOptions, RecordReader};

fuzz_target!(|data: &[u8]| {
    let options = ReaderOptions {
        format: InputFormat::Csv,
        id_field: "id".into(),
        max_record_bytes: 4096,
        source_name: "fuzz.csv".into(),
    };
    for record in RecordReader::new(data, options) {
        match record {
            Ok(r) => {
                let value: serde_json::Value =
                    serde_json::from_str(&r.data).expect("a record is valid JSON");
                assert!(value.is_object());
            }
            Err(e) => assert!(e.to_string().starts_with("fuzz.csv"), "{e}"),
        }
    }
});
