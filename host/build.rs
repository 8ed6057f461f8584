//! Embeds what the binary ships:
//! - what `isthmus plugin new` writes into a new policy project: the templates of
//!   `guest-plugins/templates`, the Rust SDK's sources and the contract `wit/policy.wit`.
//!   Build output a template folder may hold while someone tries it (virtualenvs,
//!   node_modules, generated bindings, components) is left out;
//! - the default policies (`builtin:` in a config, written by `isthmus init`), built
//!   here from `guest-plugins` by its own script so that a released binary needs no
//!   WebAssembly toolchain.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The default policies: (guest crate, world).
const BUILTINS: [(&str, &str); 2] = [("prefix-router", "router"), ("django-bridge", "bridge")];

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
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out_dir.join("embedded.rs"), out).expect("write embedded.rs");
    build_builtins(repo, &out_dir);
}

/// Build the default policies with `guest-plugins/build.sh` into `OUT_DIR/builtin` and
/// write `builtin.rs`, the table `crate::builtin` serves them from.
fn build_builtins(repo: &Path, out_dir: &Path) {
    let guests = repo.join("guest-plugins");
    for input in ["Cargo.toml", "Cargo.lock", "build.sh", "sdk", "prefix-router", "django-bridge"] {
        println!("cargo:rerun-if-changed={}", guests.join(input).display());
    }
    let dest = out_dir.join("builtin");
    let mut build = Command::new("bash");
    build.arg(guests.join("build.sh")).args(BUILTINS.map(|(krate, _)| krate)).env("ISTHMUS_PLUGINS_OUT", &dest);
    // What cargo set for this build (target folder, flags, a clippy or fuzzing wrapper)
    // is not for the guest workspace, which is built for WebAssembly by its own script.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_BOOTSTRAP",
    ] {
        build.env_remove(var);
    }
    let output = build.output().expect("run bash guest-plugins/build.sh");
    if !output.status.success() {
        panic!(
            "building the default policies (bash guest-plugins/build.sh {}) failed:\n{}{}",
            BUILTINS.map(|(krate, _)| krate).join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut table = String::from(
        "/// The default policies: (name, world, component file name, component).\n\
         pub static BUILTINS: &[(&str, &str, &str, &[u8])] = &[\n",
    );
    for (krate, world) in BUILTINS {
        let file = format!("{}.wasm", krate.replace('-', "_"));
        let path = dest.join(&file);
        assert!(path.is_file(), "guest-plugins/build.sh did not write {}", path.display());
        writeln!(table, "    ({krate:?}, {world:?}, {file:?}, include_bytes!({:?})),", path.display().to_string())
            .unwrap();
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("builtin.rs"), table).expect("write builtin.rs");
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
