//! Any record value through the URL, header and body templates: the request's scheme, host,
//! port and path structure never change, headers never split, nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use volley_core::template::{BodyTemplate, HeaderTemplate, RecordView, UrlTemplate};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut fields = Map::new();
    fields.insert("v".into(), Value::String(text.clone()));
    fields.insert("n".into(), serde_json::from_slice(data).unwrap_or(Value::Null));
    let view = RecordView {
        id: &text,
        line: 1,
        data: &fields,
    };
    let url = UrlTemplate::compile("https://api.example.com:8443/users/{v}/x?q={v}&n={n}")
        .expect("template compiles");
    if let Ok(rendered) = url.render(&view) {
        let parsed = url::Url::parse(&rendered).expect("a rendered URL parses");
        assert_eq!(parsed.scheme(), "https");
        assert_eq!(parsed.host_str(), Some("api.example.com"));
        assert_eq!(parsed.port(), Some(8443));
        let segments: Vec<&str> = parsed.path_segments().map(Iterator::collect).unwrap_or_default();
        assert_eq!(segments.len(), 3, "{rendered}");
        assert_eq!(segments[0], "users");
        assert_eq!(segments[2], "x");
        assert!(parsed.fragment().is_none());
        let keys: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
        assert_eq!(keys, ["q", "n"], "{rendered}");
    }
    let header = HeaderTemplate::compile("X-Value", "v={v}", &|_| None).expect("compiles");
    if let Ok(h) = header.render(&view) {
        assert!(!h.value.as_bytes().iter().any(|b| *b == b'\r' || *b == b'\n'));
    }
    let body = BodyTemplate::compile(&serde_json::json!({"v": "{v}", "n": "{n}", "s": "x-{v}"}))
        .expect("compiles");
    if let Ok(value) = body.render(&view) {
        // The body's shape is the template's: values cannot add keys.
        let keys: Vec<&String> = value.as_object().expect("an object").keys().collect();
        assert_eq!(keys.len(), 3);
    }
});
