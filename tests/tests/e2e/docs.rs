//! The project explains itself: the README and `docs/` link only to files in the repository,
//! and every page of `docs/` is reachable from the README.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf()
}

/// The relative link targets of a Markdown text (`[text](target)`), without anchors.
fn relative_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        let target = rest[..end].split('#').next().unwrap_or_default().trim();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            links.push(target.to_string());
        }
    }
    links
}

/// `NAME.md` files a text names in code spans, e.g. `` `RELIABILITY.md` ``.
fn named_markdown_files(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| span.ends_with(".md") && !span.contains(' '))
        .map(str::to_string)
        .collect()
}

fn pages() -> anyhow::Result<Vec<PathBuf>> {
    let root = repo_root();
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    Ok(pages)
}

#[test]
fn readme_and_docs_link_only_to_files_in_the_repository() -> anyhow::Result<()> {
    let root = repo_root();
    let mut broken = Vec::new();
    for page in pages()? {
        let text = std::fs::read_to_string(&page)?;
        let base = page.parent().unwrap_or(&root);
        for link in relative_links(&text) {
            if !base.join(&link).exists() {
                broken.push(format!("{} -> {link}", page.display()));
            }
        }
        for name in named_markdown_files(&text) {
            let here = base.join(&name).exists() || root.join(&name).exists();
            let in_docs = root.join("docs").join(&name).exists();
            if !here && !in_docs {
                broken.push(format!("{} names {name}", page.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to files outside the repository:\n{}",
        broken.join("\n")
    );
    Ok(())
}

#[test]
fn every_docs_page_is_linked_from_the_readme() -> anyhow::Result<()> {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md"))?;
    let linked = relative_links(&readme);
    let pages: Vec<_> = pages()?.into_iter().skip(1).collect();
    assert!(!pages.is_empty(), "docs/ has no pages");
    for page in pages {
        let name = page
            .file_name()
            .map(|n| format!("docs/{}", n.to_string_lossy()))
            .unwrap_or_default();
        assert!(linked.contains(&name), "README.md does not link to {name}");
    }
    Ok(())
}

#[test]
fn the_link_checks_see_a_broken_link() {
    let text = "See [the plan](RELIABILITY.md#x) and `STYLE.md`, [web](https://example.com).";
    assert_eq!(relative_links(text), vec!["RELIABILITY.md".to_string()]);
    assert_eq!(named_markdown_files(text), vec!["STYLE.md".to_string()]);
}
