//! Embeds what `isthmus plugin new` writes into a new policy project: the templates of
//! `guest-plugins/templates`, the Rust SDK's sources and the contract `wit/policy.wit`.
//! Build output a template folder may hold while someone tries it (virtualenvs,
//! node_modules, generated bindings, components) is left out.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const SKIP_DIRS: [&str; 10] = [
    "node_modules",
    ".venv",
    ".bindings",
    ".tools",
    "gen",
    "target",
    "__pycache__",
    "types",
    ".mypy_cache",
    ".pytest_cache",
];
const SKIP_EXTENSIONS: [&str; 4] = ["wasm", "o", "cwasm", "pyc"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let repo = manifest.parent().expect("host/ is in the repository");
    let mut files = Vec::new();
    for (prefix, dir) in
        [("templates", repo.join("guest-plugins/templates")), ("sdk/src", repo.join("guest-plugins/sdk/src"))]
    {
        println!("cargo:rerun-if-changed={}", dir.display());
        walk(&dir, &dir, prefix, &mut files);
    }
    let wit = repo.join("wit/policy.wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    files.push(("wit/policy.wit".to_owned(), wit, false));
    files.sort();
    let mut out = String::from(
        "/// Every embedded file: (path, contents, executable).\npub static FILES: &[(&str, &[u8], bool)] = &[\n",
    );
    for (name, path, executable) in files {
        writeln!(out, "    ({name:?}, include_bytes!({:?}), {executable}),", path.display().to_string()).unwrap();
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("embedded.rs");
    std::fs::write(dest, out).expect("write embedded.rs");
}

fn walk(root: &Path, dir: &Path, prefix: &str, files: &mut Vec<(String, PathBuf, bool)>) {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).expect("read a template folder").map(|e| e.expect("entry")).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = std::fs::metadata(&path).expect("metadata");
        if meta.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) {
                walk(root, &path, prefix, files);
            }
        } else if !path.extension().is_some_and(|x| SKIP_EXTENSIONS.iter().any(|s| x == *s)) {
            let rel = path.strip_prefix(root).expect("under the root").to_string_lossy().into_owned();
            files.push((format!("{prefix}/{rel}"), path, meta.permissions().mode() & 0o111 != 0));
        }
    }
}
