use super::*;

fn opts(format: InputFormat) -> ReaderOptions {
    ReaderOptions {
        format,
        id_field: "id".into(),
        max_record_bytes: 1024,
        source_name: "in.jsonl".into(),
    }
}

fn read_all(format: InputFormat, text: &[u8]) -> Vec<Result<InputRecord, String>> {
    RecordReader::new(text, opts(format))
        .map(|r| r.map_err(|e| e.to_string()))
        .collect()
}

#[test]
fn jsonl_ids_lines_bom_crlf_blank_lines_and_last_line() {
    let text = b"\xEF\xBB\xBF{\"id\":\"a\",\"x\":1}\r\n\n  \n{\"id\":7}\n{\"x\":2}";
    let got = read_all(InputFormat::Jsonl, text);
    assert_eq!(got.len(), 3);
    let r: Vec<InputRecord> = got.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        (r[0].id.as_str(), r[0].line, r[0].data.as_str()),
        ("a", 1, "{\"id\":\"a\",\"x\":1}")
    );
    assert_eq!((r[1].id.as_str(), r[1].line), ("7", 4));
    assert_eq!((r[2].id.as_str(), r[2].line), ("5", 5));
}

#[test]
fn jsonl_errors_name_file_line_and_column() {
    let got = read_all(InputFormat::Jsonl, b"{\"id\":1}\n{\"id\": 5,\n{\"id\":3}\n");
    assert_eq!(got.len(), 2, "the reader stops at the first error");
    assert_eq!(
        got[1].as_ref().unwrap_err(),
        "in.jsonl:2:9: EOF while parsing a value"
    );
    let arr = read_all(InputFormat::Jsonl, b"[1,2]\n");
    assert_eq!(
        arr[0].as_ref().unwrap_err(),
        "in.jsonl:1:1: expected a JSON object, found an array"
    );
    let trailing = read_all(InputFormat::Jsonl, b"{\"id\":1} x\n");
    assert!(
        trailing[0].as_ref().unwrap_err().starts_with("in.jsonl:1:"),
        "{trailing:?}"
    );
}

#[test]
fn jsonl_bad_bytes_and_ids() {
    let utf8 = read_all(InputFormat::Jsonl, b"{\"id\":\"\xff\"}\n");
    assert_eq!(
        utf8[0].as_ref().unwrap_err(),
        "in.jsonl:1: invalid UTF-8 at byte 8 of the line"
    );
    let nul = read_all(InputFormat::Jsonl, b"{\"id\":\"a\0\"}\n");
    assert!(nul[0].is_err());
    for (value, kind) in [
        ("1.5", "a number that is not"),
        ("true", "a boolean"),
        ("null", "null"),
        ("{}", "an object"),
        ("[1]", "an array"),
        ("18446744073709551616", "a number that is not"),
    ] {
        let line = format!("{{\"id\":{value}}}\n");
        let got = read_all(InputFormat::Jsonl, line.as_bytes());
        let err = got[0].as_ref().unwrap_err();
        assert!(
            err.starts_with(&format!(
                "in.jsonl:1: id field 'id' must be a string or an integer, found {kind}"
            )),
            "{err}"
        );
    }
    let empty = read_all(InputFormat::Jsonl, b"{\"id\":\"\"}\n");
    assert_eq!(
        empty[0].as_ref().unwrap_err(),
        "in.jsonl:1: id field 'id' is empty"
    );
    let dup = read_all(
        InputFormat::Jsonl,
        b"{\"id\":\"first\",\"id\":\"second\"}\n",
    );
    assert_eq!(dup[0].as_ref().unwrap().id, "first");
    let neg = read_all(InputFormat::Jsonl, b"{\"id\":-3}\n");
    assert_eq!(neg[0].as_ref().unwrap().id, "-3");
}

#[test]
fn oversized_line_is_refused_without_buffering_it() {
    let mut text = b"{\"id\":1}\n{\"id\":\"".to_vec();
    text.extend(std::iter::repeat_n(b'x', 5 * 1024 * 1024));
    text.extend_from_slice(b"\"}\n{\"id\":3}\n");
    let mut reader = jsonl::JsonlReader::new(&text[..], opts(InputFormat::Jsonl));
    assert!(reader.next_record().unwrap().is_ok());
    let err = reader.next_record().unwrap().unwrap_err().to_string();
    assert_eq!(
        err,
        "in.jsonl:2: record is larger than input.max_record_bytes (1024 bytes)"
    );
    assert!(
        reader.buffer_capacity() < 64 * 1024,
        "buffer grew to {}",
        reader.buffer_capacity()
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let mut line = String::from("{\"id\":1,\"x\":");
    line.push_str(&"[".repeat(10_000));
    line.push_str(&"]".repeat(10_000));
    line.push_str("}\n");
    let o = ReaderOptions {
        max_record_bytes: 1 << 20,
        ..opts(InputFormat::Jsonl)
    };
    let got: Vec<_> = RecordReader::new(line.as_bytes(), o).collect();
    let err = got[0].as_ref().unwrap_err().to_string();
    assert_eq!(err, "in.jsonl:1: nesting deeper than 128 levels");
}

#[test]
fn csv_rows_become_string_objects() {
    let text = b"id,name,note\n1,Ann,\"say \"\"hi\"\"\"\n2,Bo,\"two\nlines\"\n3,\xc3\xa9,\\\n";
    let got: Vec<InputRecord> = read_all(InputFormat::Csv, text)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0].data,
        r#"{"id":"1","name":"Ann","note":"say \"hi\""}"#
    );
    assert_eq!((got[1].id.as_str(), got[1].line), ("2", 3));
    assert_eq!(
        got[2].line, 5,
        "a quoted field spanning lines: the next row starts after it"
    );
    assert_eq!(got[2].data, r#"{"id":"3","name":"é","note":"\\"}"#);
    let v: serde_json::Value = serde_json::from_str(&got[1].data).unwrap();
    assert_eq!(v["note"], "two\nlines");
}

#[test]
fn csv_errors_and_edge_files() {
    let short = read_all(InputFormat::Csv, b"id,a,b,c,d\n1,2,3,4,5\n2,3,4,5\n");
    assert_eq!(
        short[1].as_ref().unwrap_err(),
        "in.jsonl:3: expected 5 fields, found 4"
    );
    assert!(read_all(InputFormat::Csv, b"").is_empty());
    assert!(read_all(InputFormat::Csv, b"id,a\n").is_empty());
    let dup = read_all(InputFormat::Csv, b"id,a,a\n1,2,3\n");
    assert_eq!(
        dup[0].as_ref().unwrap_err(),
        "in.jsonl:1: duplicate column name 'a'"
    );
    let no_id: Vec<InputRecord> = read_all(InputFormat::Csv, b"name\nx\ny\n")
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!((no_id[0].id.as_str(), no_id[1].id.as_str()), ("2", "3"));
}

#[test]
fn format_from_extension() {
    assert_eq!(
        InputFormat::from_path(Path::new("a.JSONL")),
        Some(InputFormat::Jsonl)
    );
    assert_eq!(
        InputFormat::from_path(Path::new("a.csv")),
        Some(InputFormat::Csv)
    );
    assert_eq!(InputFormat::from_path(Path::new("a.txt")), None);
}

/// Fuzzing found both: records the reader passed but the worker could not parse, which would
/// have made their whole chunk undecodable. Every accepted record must parse as the worker
/// parses it.
#[test]
fn records_the_worker_could_not_parse_are_refused_with_their_line() {
    let cases: [(&[u8], &str); 4] = [
        (
            b"{\"id\":1}\n{\"id\":2,\"x\":44e3333333}\n",
            "in.jsonl:2:22: number out of range",
        ),
        (
            b"{\"id\":1,\"deep\":[{\"n\":-1e400}]}\n",
            "in.jsonl:1:27: number out of range",
        ),
        (
            b"{\"$serde_json::private::RawValue\":\"1\"}\n",
            "in.jsonl:1:",
        ),
        (
            b"{\"id\":1,\"a\":{\"$serde_json::private::Number\":\"1\"}}\n",
            "in.jsonl:1:",
        ),
    ];
    for (text, expected) in cases {
        let got = read_all(InputFormat::Jsonl, text);
        let err = got
            .iter()
            .find_map(|r| r.as_ref().err())
            .unwrap_or_else(|| panic!("accepted {:?}", String::from_utf8_lossy(text)))
            .to_string();
        assert!(err.starts_with(expected), "{err}");
    }
    let csv = read_all(
        InputFormat::Csv,
        b"$serde_json::private::RawValue,id\n1,2\n",
    );
    let err = csv[0].as_ref().unwrap_err().to_string();
    assert!(err.contains("reserved by the JSON parser"), "{err}");
    // Whatever the reader accepts parses again.
    for r in read_all(
        InputFormat::Jsonl,
        b"{\"id\":1,\"x\":1e300,\"y\":[1,{\"z\":-0.5}]}\n",
    ) {
        let r = r.unwrap();
        serde_json::from_str::<serde_json::Value>(&r.data).unwrap();
    }
}
