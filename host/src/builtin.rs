//! The default policies, compiled into the binary at build time (see `build.rs`): a
//! config names one as `plugin = "builtin:prefix-router"`, and `isthmus init` writes
//! them into a new project's plugins folder for users to read, replace or extend.

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/builtin.rs"));
}

/// What a config writes before a built-in's name.
pub const PREFIX: &str = "builtin:";

/// One default policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// As a config names it after `builtin:`, e.g. `prefix-router`.
    pub name: &'static str,
    /// The world of `isthmus:policy` it is built for: `router` or `bridge`.
    pub world: &'static str,
    /// The file `isthmus init` writes it to, e.g. `prefix_router.wasm`.
    pub file_name: &'static str,
    /// The component.
    pub bytes: &'static [u8],
}

/// Every built-in, in a fixed order.
pub fn all() -> impl Iterator<Item = Builtin> {
    embedded::BUILTINS.iter().map(|&(name, world, file_name, bytes)| Builtin { name, world, file_name, bytes })
}

/// The built-in a config's `plugin` value names, if it is `builtin:NAME`:
/// `Some(Err(names))` when NAME is none of them.
pub fn named(plugin: &str) -> Option<Result<Builtin, String>> {
    let name = plugin.strip_prefix(PREFIX)?;
    Some(all().find(|b| b.name == name).ok_or_else(|| {
        let names: Vec<String> = all().map(|b| format!("{PREFIX}{}", b.name)).collect();
        format!("`{plugin}` is not a built-in policy; the built-ins are {}", names.join(", "))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_is_a_component_of_its_world() {
        let names: Vec<_> = all().map(|b| (b.name, b.world)).collect();
        assert_eq!(names, [("prefix-router", "router"), ("django-bridge", "bridge")]);
        for b in all() {
            // A component: \0asm, version 0x0d, layer 1 (a core module has layer 0).
            assert_eq!(&b.bytes[..8], b"\0asm\x0d\0\x01\0", "{}", b.name);
            assert_eq!(b.file_name, format!("{}.wasm", b.name.replace('-', "_")));
        }
    }

    #[test]
    fn names_resolve_and_unknown_ones_list_the_builtins() {
        assert_eq!(named("builtin:django-bridge").unwrap().unwrap().world, "bridge");
        assert_eq!(named("prefix_router.wasm"), None);
        let err = named("builtin:prefix_router").unwrap().unwrap_err();
        assert!(err.contains("builtin:prefix-router, builtin:django-bridge"), "{err}");
    }
}
