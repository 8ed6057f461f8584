//! Errors of loading plugins: reading, compiling, instantiating, `setup`. What goes
//! wrong during a routing call is a `crate::policy::PolicyFailure`, not this. The
//! compiled-plugin cache has no error here on purpose: whatever goes wrong with it is
//! logged and costs a compilation, never a refused plugin.

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The WebAssembly engine could not be set up (e.g. no address space for the pool).
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    /// `from`: the plugin's file, or `builtin:NAME`.
    #[error("plugin `{plugin}`: cannot read {from}: {source}")]
    Read {
        plugin: String,
        from: String,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin `{plugin}`: {from} is not a usable component: {reason}")]
    Compile { plugin: String, from: String, reason: String },
    /// The component does not fit the `router` world or cannot be instantiated.
    #[error("plugin `{plugin}`: cannot instantiate: {reason}")]
    Instantiate { plugin: String, reason: String },
    /// The guest's `setup` returned `err`; `message` is the guest's text, verbatim.
    #[error("plugin `{plugin}`: setup failed: {message}")]
    Setup { plugin: String, message: String },
    /// `setup` trapped, ran past its deadline or hit the memory cap.
    #[error("plugin `{plugin}`: setup {failure}")]
    SetupFailed { plugin: String, failure: crate::policy::PolicyFailure },
    /// A setting of the plugin's entry the host cannot honour.
    #[error("plugin `{plugin}`: {message}")]
    Settings { plugin: String, message: String },
}

impl PluginError {
    /// The plugin this error is about, when it is about one.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            PluginError::Read { plugin, .. }
            | PluginError::Compile { plugin, .. }
            | PluginError::Instantiate { plugin, .. }
            | PluginError::Setup { plugin, .. }
            | PluginError::SetupFailed { plugin, .. }
            | PluginError::Settings { plugin, .. } => Some(plugin),
            PluginError::Engine(_) => None,
        }
    }
}

/// A wasmtime error with its whole chain of causes on one line.
pub(crate) fn chain(err: &wasmtime::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
