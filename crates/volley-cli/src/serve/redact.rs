//! A stored spec as the dashboard shows it. Secrets belong in `${env:NAME}` references,
//! which the spec keeps as written; a literal value under a key that reads like a secret
//! (`Authorization`, `*token*`, `*secret*`, `*password*`, `*api_key*`, `*apikey*`) is
//! replaced by `"***"`, in case someone typed one in.

const SECRET_WORDS: &[&str] = &[
    "authorization",
    "token",
    "secret",
    "password",
    "api_key",
    "api-key",
    "apikey",
];

/// `text` with every literal secret-looking value cut.
pub(crate) fn secrets_cut(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        out.push_str(&cut_line(line));
    }
    out
}

/// Cuts `key = "value"` pairs on one line (also inside an inline table), for keys that
/// read like a secret and values that are not only references.
fn cut_line(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let key = before
            .rsplit(|c: char| c == '{' || c == ',' || c.is_whitespace())
            .find(|k| !k.is_empty())
            .unwrap_or_default()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_ascii_lowercase();
        out.push_str(before);
        out.push('=');
        let after = &after[1..];
        let trimmed = after.trim_start();
        let lead = &after[..after.len() - trimmed.len()];
        let quote = trimmed.chars().next().filter(|c| *c == '"' || *c == '\'');
        match quote {
            Some(q) if SECRET_WORDS.iter().any(|w| key.contains(w)) => {
                let body = &trimmed[1..];
                let end = body.find(q).unwrap_or(body.len());
                let value = &body[..end];
                out.push_str(lead);
                if value.contains("${") {
                    out.push(q);
                    out.push_str(value);
                    out.push(q);
                } else {
                    out.push_str("\"***\"");
                }
                rest = body.get(end + 1..).unwrap_or_default();
            }
            _ => {
                out.push_str(lead);
                rest = trimmed;
                // Move past the value's first character so `==` or a quoted `=` is not
                // taken for the next key.
                if let Some(c) = rest.chars().next() {
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_secrets_are_cut_and_references_stay() {
        let spec = "name = \"x\"\n[request]\nurl = \"https://api.example.com/u/{id}?token=abc\"\n\
                    headers = { Authorization = \"Bearer sk-live-123\", X-Api-Key = \"${env:KEY}\", Accept = \"application/json\" }\n\
                    password = 'hunter2'\n";
        let shown = secrets_cut(spec);
        assert!(
            !shown.contains("sk-live-123") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(shown.contains("Authorization = \"***\""), "{shown}");
        assert!(shown.contains("X-Api-Key = \"${env:KEY}\""), "{shown}");
        assert!(shown.contains("Accept = \"application/json\""), "{shown}");
        assert!(shown.contains("name = \"x\""), "{shown}");
        assert!(shown.contains("password = \"***\""), "{shown}");
    }
}
