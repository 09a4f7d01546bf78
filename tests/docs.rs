//! The documents point at what exists: every `docs/*.md`, `etc/...`,
//! `bins/...` and `common/...` path named in the README and docs/.

use std::path::Path;

#[test]
fn every_path_the_docs_name_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut documents = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    let mut missing = Vec::new();
    let mut named_paths = 0;
    for document in &documents {
        let text = std::fs::read_to_string(document).unwrap();
        for word in text.split(|c: char| c.is_whitespace() || "`()[],;\"'".contains(c)) {
            let word = word.trim_end_matches(['.', ':']);
            let named = ["docs/", "etc/", "bins/", "common/", "scripts/"]
                .iter()
                .any(|p| word.starts_with(p));
            if !named || word.contains(['*', '<', '{', '$']) {
                continue;
            }
            named_paths += 1;
            if !root.join(word).exists() {
                missing.push(format!("{}: {word}", document.display()));
            }
        }
    }
    // The docs do name paths: a reading that found none would check nothing.
    assert!(named_paths > 20, "only {named_paths} paths found");
    assert!(missing.is_empty(), "{missing:#?}");
}
