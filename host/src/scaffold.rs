//! `isthmus plugin new --lang LANG --world WORLD DIR`: a new policy project, from the
//! templates embedded at build time (see `build.rs`): `templates/LANG/WORLD/` plus the
//! files both worlds of a language share (`templates/LANG/common/`). The project is
//! self-contained: it gets its own copy of the contract (`wit/policy.wit`) and, for
//! Rust, of the SDK.

use std::path::{Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

pub const LANGUAGES: [&str; 4] = ["rust", "python", "js", "c"];
pub const WORLDS: [&str; 2] = ["router", "bridge"];

/// The SDK's manifest in a project of its own (in this repository it inherits from
/// the guest workspace).
const SDK_MANIFEST: &str = r#"[package]
name = "isthmus-policy"
description = "Write isthmus routing and event-bridge policies in Rust"
version = "0.3.0"
edition = "2021"
license = "Apache-2.0"
publish = false

[dependencies]
serde = { version = "1", default-features = false, features = ["std"] }
serde_json = { version = "1", default-features = false, features = ["std"] }

[target.'cfg(target_arch = "wasm32")'.dependencies]
wit-bindgen = { version = "0.63", default-features = false, features = ["macros", "realloc"] }
"#;

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("--lang must be one of rust, python, js, c, not `{0}`")]
    Language(String),
    #[error("--world must be router or bridge, not `{0}`")]
    World(String),
    #[error("{} already exists and is not empty; `isthmus plugin new` does not overwrite", .0.display())]
    NotEmpty(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Write a `lang` template of `world` into `dir`; returns the files written.
pub fn new_project(lang: &str, world: &str, dir: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    if !LANGUAGES.contains(&lang) {
        return Err(ScaffoldError::Language(lang.to_owned()));
    }
    if !WORLDS.contains(&world) {
        return Err(ScaffoldError::World(world.to_owned()));
    }
    if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(ScaffoldError::NotEmpty(dir.to_owned()));
    }
    let (template, common) = (format!("templates/{lang}/{world}/"), format!("templates/{lang}/common/"));
    let mut written = Vec::new();
    for (name, bytes, executable) in embedded::FILES {
        let target = if let Some(rel) = name.strip_prefix(&template).or_else(|| name.strip_prefix(&common)) {
            Some(PathBuf::from(rel))
        } else if *name == "wit/policy.wit" {
            Some(PathBuf::from(name))
        } else {
            name.strip_prefix("sdk/").filter(|_| lang == "rust").map(|rel| Path::new("isthmus-policy").join(rel))
        };
        if let Some(rel) = target {
            written.push(write(dir, &rel, bytes, *executable)?);
        }
    }
    if lang == "rust" {
        written.push(write(dir, Path::new("isthmus-policy/Cargo.toml"), SDK_MANIFEST.as_bytes(), false)?);
        let wit = embedded::FILES.iter().find(|(n, ..)| *n == "wit/policy.wit").expect("embedded").1;
        written.push(write(dir, Path::new("isthmus-policy/wit/policy.wit"), wit, false)?);
    }
    Ok(written)
}

fn write(dir: &Path, rel: &Path, bytes: &[u8], executable: bool) -> Result<PathBuf, ScaffoldError> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(rel);
    let failed = |source| ScaffoldError::Write { path: path.clone(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::write(&path, bytes).map_err(failed)?;
    if executable {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(failed)?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_both_worlds_with_cases_and_a_readme() {
        for lang in LANGUAGES {
            for world in WORLDS {
                let (prefix, common) = (format!("templates/{lang}/{world}/"), format!("templates/{lang}/common/"));
                let files: Vec<&str> = embedded::FILES
                    .iter()
                    .map(|f| f.0)
                    .filter(|n| n.starts_with(&prefix) || n.starts_with(&common))
                    .collect();
                for needed in ["cases.toml", "README.md", ".gitignore"] {
                    assert!(files.iter().any(|f| f.ends_with(needed)), "{prefix}{needed} is missing: {files:?}");
                }
                assert!(!files.iter().any(|f| f.contains("/wit/")), "templates carry no WIT of their own: {files:?}");
            }
        }
    }

    #[test]
    fn a_project_is_self_contained_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        let files = new_project("rust", "router", &project).unwrap();
        assert!(files.contains(&project.join("wit/policy.wit")));
        assert!(project.join("isthmus-policy/wit/policy.wit").is_file());
        assert!(project.join("isthmus-policy/src/lib.rs").is_file());
        assert!(project.join(".gitignore").is_file(), "the language's common files are written too");
        let build = std::fs::metadata(project.join("build.sh")).unwrap();
        assert!(std::os::unix::fs::PermissionsExt::mode(&build.permissions()) & 0o100 != 0, "scripts stay executable");
        assert!(matches!(new_project("rust", "router", &project), Err(ScaffoldError::NotEmpty(_))));
        assert!(matches!(new_project("go", "router", &dir.path().join("q")), Err(ScaffoldError::Language(_))));
        assert!(matches!(new_project("c", "server", &dir.path().join("q")), Err(ScaffoldError::World(_))));
    }
}
