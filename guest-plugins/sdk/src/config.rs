//! Reading the plugin's `config` table (handed to `setup` as JSON text).

use serde::de::DeserializeOwned;

/// Parse `config_json` into `T`. Mark `T` `#[serde(deny_unknown_fields)]` so that a
/// misspelt key is an error naming it, not a silent default.
pub fn parse<T: DeserializeOwned>(config_json: &str) -> Result<T, String> {
    serde_json::from_str(config_json).map_err(|e| format!("config: {e}"))
}
