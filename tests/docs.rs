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

/// DESIGN.md's table of programs names each program of the services
/// table, with the user it runs as, and no program the table lacks.
#[test]
fn the_design_names_the_services_tables_programs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let design = std::fs::read_to_string(root.join("docs/DESIGN.md")).unwrap();
    let start = design.find("## The programs").unwrap();
    let end = start + design[start..].find("\n\n").unwrap() + 2;
    let table_end = end + design[end..].find("\n\n").unwrap();
    let rows: Vec<&str> = design[end..table_end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .collect();
    let programs = postern_config::services::programs();
    let mut problems = Vec::new();
    for program in &programs {
        let row = rows
            .iter()
            .find(|row| row.contains(&format!("`{}`", program.name)));
        match row {
            None => problems.push(format!("{} has no row", program.name)),
            Some(row) if !row.contains(program.user) => problems.push(format!(
                "{}'s row does not say {}",
                program.name, program.user
            )),
            Some(_) => {}
        }
    }
    for row in &rows {
        let named = row
            .split('`')
            .skip(1)
            .step_by(2)
            .any(|word| programs.iter().any(|p| p.name == word));
        if !named {
            problems.push(format!("a row names no program of the table: {row}"));
        }
    }
    assert!(rows.len() >= 10, "only {} rows", rows.len());
    assert!(problems.is_empty(), "{problems:#?}");
}
