//! Which contract a component was built against, checked before it is linked, so that
//! a component of another version of `isthmus:policy`, or one that needs what the
//! gateway does not provide, is refused with a message that says so.

use wasmtime::component::Component;
use wasmtime::Engine;

use super::component::World;

/// The version of `wit/policy.wit` this gateway speaks.
pub const VERSION: &str = "0.3.0";

/// Import namespaces the gateway links: WASI 0.2 with nothing granted, and the contract.
const PROVIDED: [&str; 7] =
    ["wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:cli/", "wasi:filesystem/", "wasi:sockets/", "isthmus:policy/"];

/// Refuse a component built against another version of the contract.
pub fn check<W: World>(engine: &Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let imported = ty.imports(engine).filter_map(|(name, _)| contract_version(name)).find(|v| *v != VERSION);
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    // 0.2.0 components import nothing versioned in the router world, but export `init`.
    let version = imported.or_else(|| (exports.contains(&"init") && !exports.contains(&"setup")).then_some("0.2.0"));
    match version {
        Some(v) => Err(format!(
            "it was built against isthmus:policy@{v}, and this gateway speaks isthmus:policy@{VERSION}: rebuild it \
             against the WIT of this release (`isthmus plugin new` writes a {} template with it)",
            W::NAME
        )),
        None => Ok(()),
    }
}

/// `0.3.0` of `isthmus:policy/http@0.3.0`.
fn contract_version(import: &str) -> Option<&str> {
    import.strip_prefix("isthmus:policy/")?.split_once('@').map(|(_, v)| v)
}

/// The component's imports the gateway does not provide.
pub fn foreign_imports(engine: &Engine, component: &Component) -> Vec<String> {
    let ty = component.component_type();
    ty.imports(engine)
        .map(|(name, _)| name)
        .filter(|n| !PROVIDED.iter().any(|p| n.starts_with(p)))
        .map(str::to_owned)
        .collect()
}

/// A link error, with the imports that caused it named first.
pub fn explain(foreign: &[String], error: &str) -> String {
    if foreign.is_empty() {
        return error.to_owned();
    }
    format!(
        "it imports {}, which the gateway does not provide (policies get WASI 0.2: cli, io, clocks, random, \
         filesystem and sockets with nothing granted, and isthmus:policy@{VERSION}); build it without them \
         (componentize-js: disable the `http` and `fetch-event` features). Linker: {error}",
        foreign.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_contract_imports_only() {
        assert_eq!(contract_version("isthmus:policy/http@0.3.0"), Some("0.3.0"));
        assert_eq!(contract_version("isthmus:policy/users@0.2.0"), Some("0.2.0"));
        assert_eq!(contract_version("wasi:io/poll@0.2.0"), None);
        assert_eq!(contract_version("isthmus:policy/types"), None);
    }

    #[test]
    fn a_link_error_names_the_foreign_imports() {
        let text = explain(&["wasi:http/types@0.2.10".into()], "mismatched resource types");
        assert!(text.starts_with("it imports `wasi:http/types@0.2.10`, which the gateway does not provide"), "{text}");
        assert!(text.ends_with("Linker: mismatched resource types"));
        assert_eq!(explain(&[], "plain"), "plain");
    }
}
