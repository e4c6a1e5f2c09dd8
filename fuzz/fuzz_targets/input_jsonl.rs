//! Any bytes as a JSONL input: the reader yields records or one error naming a line, and
//! never panics, whatever the nesting, encoding or length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_core::input::{InputFormat, ReaderOptions, RecordReader};

fuzz_target!(|data: &[u8]| {
    let options = ReaderOptions {
        format: InputFormat::Jsonl,
        id_field: "id".into(),
        max_record_bytes: 4096,
        source_name: "fuzz.jsonl".into(),
    };
    for record in RecordReader::new(data, options) {
        match record {
            Ok(r) => {
                // Every record is a JSON object whose text parses again.
                let value: serde_json::Value =
                    serde_json::from_str(&r.data).expect("a record is valid JSON");
                assert!(value.is_object());
                assert!(r.line >= 1);
            }
            Err(e) => {
                assert!(e.to_string().starts_with("fuzz.jsonl:"), "{e}");
            }
        }
    }
});
