use super::*;

const MINIMAL: &str = r#"
name = "enrich"
[request]
url = "http://127.0.0.1:8080/users/{id}"
"#;

fn err(text: &str) -> String {
    JobSpec::from_toml(text).unwrap_err().to_string()
}

#[test]
fn minimal_spec_gets_documented_defaults() {
    let spec = JobSpec::from_toml(MINIMAL).unwrap();
    assert_eq!(spec.chunking.size, 100);
    assert_eq!(spec.concurrency.per_worker, 64);
    assert_eq!(spec.retry.max_attempts, 3);
    assert_eq!(
        spec.request.timeout.get(),
        std::time::Duration::from_secs(10)
    );
    assert_eq!(spec.result.body, BodyMode::Json);
    assert_eq!(spec.input.id_field, "id");
    assert!(!spec.request.sends_idempotency_key());
}

#[test]
fn full_design_example_parses() {
    let text = r#"
name = "enrich-users"
[input]
format = "jsonl"
id_field = "id"
[chunking]
size = 100
[request]
method = "post"
url = "http://127.0.0.1:8080/users/{id}?src={source}"
headers = { Authorization = "Bearer ${env:API_TOKEN}" }
body = { name = "{name}", id = "{id}", tags = ["a", "{tag}"] }
timeout = "250ms"
[concurrency]
per_worker = 64
rate_limit = 500
[retry]
max_attempts = 5
base_delay = "200ms"
max_delay = "30s"
on_status = [429, 500, 502, 503, 504]
[result]
body = "json"
max_body_bytes = 65536
select = ["/id", "/email"]
tolerated_failure_percent = 1.5
retention = "2d"
"#;
    let spec = JobSpec::from_toml(text).unwrap();
    let fleet = std::time::Duration::from_secs(7 * 86_400);
    assert_eq!(spec.result.retention_secs(fleet), 2 * 86_400);
    assert_eq!(
        JobSpec::from_toml(MINIMAL)
            .unwrap()
            .result
            .retention_secs(fleet),
        7 * 86_400,
        "without result.retention, the fleet's setting"
    );
    assert_eq!(spec.request.method.0, http::Method::POST);
    assert!(spec.request.sends_idempotency_key());
    assert_eq!(
        spec.request.timeout.get(),
        std::time::Duration::from_millis(250)
    );
    assert_eq!(spec.concurrency.rate_limit, Some(500.0));
}

#[test]
fn bad_duration_names_key_and_value() {
    let text = MINIMAL.replace("{id}\"", "{id}\"\ntimeout = \"ten\"");
    assert_eq!(
        err(&text),
        "request.timeout: invalid duration 'ten' (write e.g. \"10s\", \"250ms\", \"2m\")"
    );
}

#[test]
fn unknown_keys_are_refused_with_their_section() {
    let e = err(&MINIMAL.replace("[request]", "[request]\nretries = 3"));
    assert!(
        e.starts_with("request.retries: unknown field `retries`"),
        "{e}"
    );
    let e = err(&format!("{MINIMAL}\n[retry]\nmax_atempts = 3\n"));
    assert!(
        e.starts_with("retry.max_atempts: unknown field `max_atempts`"),
        "{e}"
    );
    let e = err(&format!("colour = 1\n{MINIMAL}"));
    assert!(
        e.starts_with("spec: unknown field `colour`") || e.contains("colour"),
        "{e}"
    );
}

#[test]
fn bad_values_name_their_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[chunking]\nsize = 0",
            "chunking.size: must be between 1 and 10000, got 0",
        ),
        ("[concurrency]\nper_worker = 0", "concurrency.per_worker:"),
        ("[retry]\nmax_attempts = 0", "retry.max_attempts:"),
        (
            "[result]\ntolerated_failure_percent = 150",
            "result.tolerated_failure_percent:",
        ),
        (
            "[result]\nretention = \"10s\"",
            "result.retention: must be at least 1 minute",
        ),
        (
            "[result]\nmax_body_bytes = 1000000000",
            "result.max_body_bytes:",
        ),
        (
            "[result]\nbody = \"xml\"",
            "result.body: unknown variant `xml`",
        ),
        (
            "[result]\nselect = [\"id\"]",
            "result.select: 'id' is not a JSON pointer",
        ),
    ];
    for (extra, expected) in cases {
        let e = err(&format!("{MINIMAL}\n{extra}\n"));
        assert!(e.starts_with(expected), "for {extra:?}: {e}");
    }
}

#[test]
fn bad_method_and_urls_are_refused() {
    let e = err(&MINIMAL.replace("[request]", "[request]\nmethod = \"FETCH\""));
    assert!(
        e.starts_with("request.method: unsupported method 'FETCH'"),
        "{e}"
    );
    let url_cases: &[(&str, &str)] = &[
        (
            "http://127.0.0.1:8080/users/{id",
            "request.url: unclosed placeholder '{id'",
        ),
        (
            "http://{host}/x",
            "request.url: placeholder not allowed in host",
        ),
        (
            "ftp://example.com/{id}",
            "request.url: scheme 'ftp' is not supported",
        ),
        (
            "example.com/{id}",
            "request.url: 'example.com/{id}' has no scheme",
        ),
        ("http://h/{}", "request.url: empty placeholder"),
        (
            "http://h/x#{id}",
            "request.url: a fragment ('#') is not allowed",
        ),
    ];
    for (url, expected) in url_cases {
        let e = err(&MINIMAL.replace("http://127.0.0.1:8080/users/{id}", url));
        assert!(e.starts_with(expected), "for {url}: {e}");
    }
}

#[test]
fn missing_secret_is_reported_by_check_secrets_only() {
    let text = MINIMAL.replace(
        "[request]",
        "[request]\nheaders = { X-Key = \"${env:NOPE_NOT_SET}\" }",
    );
    let spec = JobSpec::from_toml(&text).unwrap();
    let e = spec.check_secrets(&|_| None).unwrap_err().to_string();
    assert_eq!(
        e,
        "request.headers.X-Key: environment variable NOPE_NOT_SET is not set"
    );
    assert!(spec.check_secrets(&|_| Some("s".into())).is_ok());
}

#[test]
fn toml_syntax_error_names_the_line() {
    let e = err("name = \"x\"\n[request\nurl = 1");
    assert!(e.starts_with("spec: invalid TOML (line 2)"), "{e}");
}

#[test]
fn weight_defaults_to_one_and_is_refused_outside_one_to_a_hundred() {
    assert_eq!(JobSpec::from_toml(MINIMAL).unwrap().weight.get(), 1);
    let with = |w: &str| {
        MINIMAL.replace(
            "name = \"enrich\"",
            &format!("name = \"enrich\"\nweight = {w}"),
        )
    };
    assert_eq!(JobSpec::from_toml(&with("3")).unwrap().weight.get(), 3);
    for bad in ["0", "101", "-1"] {
        let e = err(&with(bad));
        assert!(e.starts_with("weight: "), "{e}");
        assert!(e.contains("out of range (1 to 100)"), "{e}");
    }
}
