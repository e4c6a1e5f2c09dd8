use super::*;
use serde_json::{Map, Value, json};

fn data(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn render_url(template: &str, record: Value) -> Result<String, TemplateError> {
    let t = UrlTemplate::compile(template).unwrap();
    let d = data(record);
    t.render(&RecordView {
        id: "r1",
        line: 7,
        data: &d,
    })
}

#[test]
fn path_values_are_one_encoded_segment() {
    let cases = [
        ("../admin", "..%2Fadmin"),
        ("%2e%2e", "%252e%252e"),
        ("a/b", "a%2Fb"),
        ("%2F", "%252F"),
        ("1?admin=true", "1%3Fadmin%3Dtrue"),
        ("1#f", "1%23f"),
        ("@evil.com", "%40evil.com"),
        ("//evil", "%2F%2Fevil"),
        ("\\\\evil", "%5C%5Cevil"),
        ("x\r\nHost: evil", "x%0D%0AHost%3A%20evil"),
        ("héllo wörld", "h%C3%A9llo%20w%C3%B6rld"),
        ("a;b:c", "a%3Bb%3Ac"),
    ];
    for (value, encoded) in cases {
        let url = render_url(
            "https://api.example.com:8443/v1/users/{id}/x",
            json!({ "id": value }),
        )
        .unwrap();
        assert_eq!(
            url,
            format!("https://api.example.com:8443/v1/users/{encoded}/x"),
            "{value}"
        );
        let parsed = ::url::Url::parse(&url).unwrap();
        assert_eq!(parsed.host_str(), Some("api.example.com"));
        assert_eq!(parsed.port(), Some(8443));
        assert_eq!(parsed.path_segments().unwrap().count(), 4, "{value}");
    }
}

#[test]
fn dot_segments_and_empty_values_are_refused() {
    for value in [".", "..", ""] {
        let e = render_url("http://h/users/{id}", json!({ "id": value })).unwrap_err();
        assert!(
            matches!(e, TemplateError::InvalidPathSegment(..)),
            "{value}: {e}"
        );
    }
    // Inside a longer segment a dot is harmless.
    assert_eq!(
        render_url("http://h/f/{id}.json", json!({"id": ".."})).unwrap(),
        "http://h/f/...json"
    );
}

#[test]
fn query_values_are_encoded_and_numbers_render() {
    let url = render_url(
        "http://h/s?q={q}&n={n}&fixed=1",
        json!({"q": "a b&c=d", "n": 42}),
    )
    .unwrap();
    assert_eq!(url, "http://h/s?q=a%20b%26c%3Dd&n=42&fixed=1");
}

#[test]
fn missing_null_and_nested_fields() {
    assert_eq!(
        render_url("http://h/{email}", json!({"id": 1}))
            .unwrap_err()
            .to_string(),
        "missing field 'email'"
    );
    assert_eq!(
        render_url("http://h/{email}", json!({"email": null}))
            .unwrap_err()
            .to_string(),
        "field 'email' is null, not a string or number"
    );
    assert_eq!(
        render_url(
            "http://h/{user.email}/{_id}/{_line}",
            json!({"user": {"email": "a@b"}})
        )
        .unwrap(),
        "http://h/a%40b/r1/7"
    );
    let long = "x".repeat(MAX_VALUE_BYTES + 1);
    assert!(matches!(
        render_url("http://h/{id}", json!({ "id": long })),
        Err(TemplateError::ValueTooLong(..))
    ));
}

#[test]
fn headers_resolve_secrets_once_and_refuse_crlf() {
    let env = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
    let h = HeaderTemplate::compile("Authorization", "Bearer ${env:TOKEN}", &env).unwrap();
    assert!(h.is_sensitive());
    let d = data(json!({"id": "x\r\nEvil: 1"}));
    let view = RecordView {
        id: "r",
        line: 1,
        data: &d,
    };
    let rendered = h.render(&view).unwrap();
    assert_eq!(rendered.value.to_str().unwrap(), "Bearer s3cret");
    assert!(rendered.value.is_sensitive());
    let templated = HeaderTemplate::compile("X-User", "u-{id}", &env).unwrap();
    assert_eq!(
        templated.render(&view).unwrap_err(),
        TemplateError::BadHeaderValue("x-user".into())
    );
    assert!(HeaderTemplate::compile("Bad Name", "v", &env).is_err());
    assert_eq!(
        HeaderTemplate::compile("X", "${env:NOPE}", &env).unwrap_err(),
        "environment variable NOPE is not set"
    );
}

#[test]
fn body_keeps_types_for_exact_placeholders_and_cannot_be_injected() {
    let t = BodyTemplate::compile(&json!({
        "n": "{n}", "obj": "{obj}", "greeting": "hi {name}", "fixed": 3, "list": ["{n}", "x"]
    }))
    .unwrap();
    let d = data(json!({"n": 5, "obj": {"a": [1]}, "name": "\",\"admin\":true,\""}));
    let body = t
        .render(&RecordView {
            id: "r",
            line: 1,
            data: &d,
        })
        .unwrap();
    assert_eq!(
        body,
        json!({"n": 5, "obj": {"a": [1]}, "greeting": "hi \",\"admin\":true,\"", "fixed": 3, "list": [5, "x"]})
    );
    let missing = t.render(&RecordView {
        id: "r",
        line: 1,
        data: &Map::new(),
    });
    // Object keys render in sorted order: the first missing field met is the one in "greeting".
    assert_eq!(
        missing.unwrap_err(),
        TemplateError::MissingField("name".into())
    );
}

#[test]
fn braces_escape_and_fields_are_listed() {
    let t = UrlTemplate::compile("http://h/{{x}}/{a}?b={b}").unwrap();
    assert_eq!(t.fields(), vec!["a".to_string(), "b".to_string()]);
    let d = data(json!({"a": 1, "b": 2}));
    assert_eq!(
        t.render(&RecordView {
            id: "r",
            line: 1,
            data: &d
        })
        .unwrap(),
        "http://h/{x}/1?b=2"
    );
}

#[test]
fn no_value_changes_origin_or_path_structure() {
    // A property check over random strings built from the characters that matter.
    let alphabet: Vec<char> = "/\\?#%@:;&=+.. \r\n\t\u{0}{}[]'\"<>é日-_~aZ9%2F%2e"
        .chars()
        .collect();
    let t = UrlTemplate::compile("https://api.example.com:8443/a/{v}/b?q={v}&k=1").unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..5_000 {
        let len = rng.usize(1..24);
        let value: String = (0..len)
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect();
        let d = data(json!({ "v": value }));
        let view = RecordView {
            id: "r",
            line: 1,
            data: &d,
        };
        let Ok(rendered) = t.render(&view) else {
            assert!(
                matches!(value.as_str(), "." | ".."),
                "only dot segments fail: {value:?}"
            );
            continue;
        };
        let parsed = ::url::Url::parse(&rendered).unwrap();
        assert_eq!(parsed.host_str(), Some("api.example.com"), "{value:?}");
        assert_eq!(parsed.port(), Some(8443), "{value:?}");
        assert_eq!(
            parsed.path_segments().unwrap().count(),
            3,
            "{value:?} -> {rendered}"
        );
        assert_eq!(parsed.query_pairs().count(), 2, "{value:?} -> {rendered}");
        assert_eq!(parsed.fragment(), None, "{value:?}");
        let (_, q) = parsed.query_pairs().next().unwrap();
        assert_eq!(q, value.as_str(), "the API reads back the exact value");
    }
}
