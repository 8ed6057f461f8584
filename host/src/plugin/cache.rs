//! Compiled plugins on disk, so that a restart or a reload of an unchanged plugin
//! does not compile again.
//!
//! An entry is two files in the cache folder, named by a key that hashes the
//! component's bytes together with the engine's precompile compatibility hash:
//! `<key>.cwasm`, the output of `Component::serialize`, and `<key>.meta`, a
//! postcard-encoded [`CacheMeta`] written after it (the entry's commit mark). Both
//! are written to a temporary file and renamed into place.
//!
//! `Component::deserialize` trusts its input (it maps the bytes as machine code), so
//! an entry is used only after every field of the meta and the SHA-256 of the
//! `.cwasm` match. Anything else (missing, truncated, flipped bytes, garbage, another
//! engine) is logged, recompiled and rewritten. A cache folder that cannot be
//! written only costs the compile time: it is logged and the plugin still loads.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Version of the entry format; bump when `CacheMeta` or the key changes.
pub const CACHE_FORMAT: u32 = 1;
/// A meta file is a few dozen bytes; anything far larger is garbage.
const MAX_META_BYTES: u64 = 4096;

/// The `<key>.meta` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheMeta {
    pub format: u32,
    /// SHA-256 of the component (`.wasm`) bytes.
    pub source_sha256: [u8; 32],
    /// SHA-256 of the engine's `precompile_compatibility_hash`.
    pub engine_hash: [u8; 32],
    /// SHA-256 of the `.cwasm` bytes.
    pub cwasm_sha256: [u8; 32],
    pub cwasm_len: u64,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Valid entry found and loaded.
    Hit,
    /// No entry: compiled (and stored, if the cache is writable).
    Miss,
    /// An entry was there but rejected (corrupt, stale): compiled and rewritten.
    Rejected,
    /// No cache folder usable: compiled.
    Disabled,
}

pub(crate) struct Loaded {
    pub component: Component,
    pub outcome: CacheOutcome,
    /// Time to obtain the component (deserialize on a hit, compile otherwise).
    pub elapsed: Duration,
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `engine.precompile_compatibility_hash()`.
pub(crate) fn engine_hash(engine: &Engine) -> [u8; 32] {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            unreachable!("only `write` is used")
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = ShaHasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    h.0.finalize().into()
}

/// The entry's file stem for a component and an engine.
pub fn cache_key(source_sha256: &[u8; 32], engine_hash: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(source_sha256);
    h.update(engine_hash);
    hex(&h.finalize())
}

/// Compile `bytes`, through the cache in `dir` when given.
pub(crate) fn load_or_compile(
    engine: &Engine,
    dir: Option<&Path>,
    plugin: &str,
    bytes: &[u8],
    source_sha256: &[u8; 32],
) -> wasmtime::Result<Loaded> {
    let start = Instant::now();
    let Some(dir) = dir else {
        let component = Component::new(engine, bytes)?;
        return Ok(Loaded { component, outcome: CacheOutcome::Disabled, elapsed: start.elapsed() });
    };
    let engine_hash = engine_hash(engine);
    let key = cache_key(source_sha256, &engine_hash);
    let cwasm_path = dir.join(format!("{key}.cwasm"));
    let meta_path = dir.join(format!("{key}.meta"));
    let expected = |cwasm: &[u8]| CacheMeta {
        format: CACHE_FORMAT,
        source_sha256: *source_sha256,
        engine_hash,
        cwasm_sha256: sha256(cwasm),
        cwasm_len: cwasm.len() as u64,
    };

    let outcome = match read_entry(&meta_path, &cwasm_path, source_sha256, &engine_hash) {
        Ok(Some(cwasm)) => {
            // SAFETY: these bytes are, byte for byte (SHA-256 checked above), what
            // `Component::serialize` produced for this component on an engine with
            // this compatibility hash, and were written by this cache.
            #[allow(unsafe_code)]
            let deserialized = unsafe { Component::deserialize(engine, &cwasm) };
            match deserialized {
                Ok(component) => {
                    tracing::debug!(plugin, key = %key, "compiled plugin loaded from cache");
                    return Ok(Loaded { component, outcome: CacheOutcome::Hit, elapsed: start.elapsed() });
                }
                Err(e) => {
                    tracing::warn!(plugin, file = %cwasm_path.display(), reason = %super::error::chain(&e), "cached compiled plugin rejected; recompiling");
                    CacheOutcome::Rejected
                }
            }
        }
        Ok(None) => CacheOutcome::Miss,
        Err(reason) => {
            tracing::warn!(plugin, file = %meta_path.display(), %reason, "cached compiled plugin rejected; recompiling");
            CacheOutcome::Rejected
        }
    };

    let component = Component::new(engine, bytes)?;
    let elapsed = start.elapsed();
    match component.serialize() {
        Ok(cwasm) => {
            let meta = expected(&cwasm);
            if let Err(e) = write_entry(dir, &cwasm_path, &meta_path, &cwasm, &meta) {
                tracing::warn!(plugin, dir = %dir.display(), error = %e, "cannot write the compiled-plugin cache; continuing without it");
            }
        }
        Err(e) => {
            tracing::warn!(plugin, error = %super::error::chain(&e), "cannot serialize the compiled plugin; not cached")
        }
    }
    Ok(Loaded { component, outcome, elapsed })
}

/// `Ok(None)`: no entry. `Ok(Some)`: the verified `.cwasm` bytes. `Err`: a bad entry.
fn read_entry(
    meta_path: &Path,
    cwasm_path: &Path,
    source_sha256: &[u8; 32],
    engine_hash: &[u8; 32],
) -> Result<Option<Vec<u8>>, String> {
    let meta_bytes = match read_bounded(meta_path, MAX_META_BYTES) {
        Ok(b) => b,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            return Ok(None)
        }
        Err(e) => return Err(format!("cannot read the meta file: {e}")),
    };
    let meta: CacheMeta = match postcard::from_bytes(&meta_bytes) {
        Ok(m) => m,
        Err(e) => return Err(format!("meta file is not valid: {e}")),
    };
    if meta.format != CACHE_FORMAT {
        return Err(format!("format {} is not {CACHE_FORMAT}", meta.format));
    }
    if &meta.source_sha256 != source_sha256 {
        return Err("entry is for another component".into());
    }
    if &meta.engine_hash != engine_hash {
        return Err("entry was compiled by an incompatible engine".into());
    }
    let cwasm = match read_bounded(cwasm_path, meta.cwasm_len.saturating_add(1)) {
        Ok(b) => b,
        Err(e) => return Err(format!("cannot read {}: {e}", cwasm_path.display())),
    };
    if cwasm.len() as u64 != meta.cwasm_len {
        return Err(format!("compiled file is {} bytes, expected {}", cwasm.len(), meta.cwasm_len));
    }
    if sha256(&cwasm) != meta.cwasm_sha256 {
        return Err("compiled file does not match its checksum".into());
    }
    Ok(Some(cwasm))
}

/// Read at most `limit` bytes of a file (a garbage entry cannot make us read gigabytes).
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

fn write_entry(dir: &Path, cwasm_path: &Path, meta_path: &Path, cwasm: &[u8], meta: &CacheMeta) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let meta_bytes = postcard::to_stdvec(meta).map_err(std::io::Error::other)?;
    // The meta goes last: a crash between the two leaves no meta, i.e. a miss.
    write_atomically(cwasm_path, cwasm)?;
    write_atomically(meta_path, &meta_bytes)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp: PathBuf = {
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(format!(".tmp-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
        path.with_file_name(name)
    };
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
