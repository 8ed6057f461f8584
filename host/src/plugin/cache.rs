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
//!
//! `<sha256 of a plugin's name>.last` holds the SHA-256 of the last version of that
//! plugin that loaded, so that a start-up finding a new version not compiled yet can
//! serve the previous one meanwhile. The folder is bounded: past
//! `PLUGIN_CACHE_MAX_BYTES`, writing an entry removes the least recently used ones.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::limits::PLUGIN_CACHE_MAX_BYTES;

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
    let entry = Entry::new(engine, dir, source_sha256);
    let outcome = match entry.load(engine, plugin) {
        Ok(component) => {
            tracing::debug!(plugin, key = %entry.key, "compiled plugin loaded from cache");
            return Ok(Loaded { component, outcome: CacheOutcome::Hit, elapsed: start.elapsed() });
        }
        Err(outcome) => outcome,
    };

    let component = Component::new(engine, bytes)?;
    let elapsed = start.elapsed();
    match component.serialize() {
        Ok(cwasm) => match entry.write(dir, &cwasm) {
            Ok(()) => evict(dir, PLUGIN_CACHE_MAX_BYTES, &entry.key),
            Err(e) => {
                tracing::warn!(plugin, dir = %dir.display(), error = %e, "cannot write the compiled-plugin cache; continuing without it")
            }
        },
        Err(e) => {
            tracing::warn!(plugin, error = %super::error::chain(&e), "cannot serialize the compiled plugin; not cached")
        }
    }
    Ok(Loaded { component, outcome, elapsed })
}

/// A cached component, loaded only if the cache already holds it (no compiling): the
/// previous version of a plugin, served while its new version compiles.
pub(crate) fn load_cached(engine: &Engine, dir: &Path, plugin: &str, source_sha256: &[u8; 32]) -> Option<Loaded> {
    let start = Instant::now();
    let component = Entry::new(engine, dir, source_sha256).load(engine, plugin).ok()?;
    Some(Loaded { component, outcome: CacheOutcome::Hit, elapsed: start.elapsed() })
}

/// The cache entry of one component on one engine.
struct Entry {
    key: String,
    cwasm_path: PathBuf,
    meta_path: PathBuf,
    source_sha256: [u8; 32],
    engine_hash: [u8; 32],
}

impl Entry {
    fn new(engine: &Engine, dir: &Path, source_sha256: &[u8; 32]) -> Entry {
        let engine_hash = engine_hash(engine);
        let key = cache_key(source_sha256, &engine_hash);
        Entry {
            cwasm_path: dir.join(format!("{key}.cwasm")),
            meta_path: dir.join(format!("{key}.meta")),
            key,
            source_sha256: *source_sha256,
            engine_hash,
        }
    }

    /// The component, or why not: `Miss` (no entry) or `Rejected` (a bad one, logged).
    fn load(&self, engine: &Engine, plugin: &str) -> Result<Component, CacheOutcome> {
        match read_entry(&self.meta_path, &self.cwasm_path, &self.source_sha256, &self.engine_hash) {
            Ok(Some(cwasm)) => {
                // SAFETY: these bytes are, byte for byte (SHA-256 checked above), what
                // `Component::serialize` produced for this component on an engine with
                // this compatibility hash, and were written by this cache.
                #[allow(unsafe_code)]
                let deserialized = unsafe { Component::deserialize(engine, &cwasm) };
                match deserialized {
                    Ok(component) => {
                        // Recently used: eviction takes the oldest first.
                        let _ = std::fs::File::options()
                            .write(true)
                            .open(&self.cwasm_path)
                            .and_then(|f| f.set_modified(SystemTime::now()));
                        Ok(component)
                    }
                    Err(e) => {
                        tracing::warn!(plugin, file = %self.cwasm_path.display(), reason = %super::error::chain(&e), "cached compiled plugin rejected; recompiling");
                        Err(CacheOutcome::Rejected)
                    }
                }
            }
            Ok(None) => Err(CacheOutcome::Miss),
            Err(reason) => {
                tracing::warn!(plugin, file = %self.meta_path.display(), %reason, "cached compiled plugin rejected; recompiling");
                Err(CacheOutcome::Rejected)
            }
        }
    }

    fn write(&self, dir: &Path, cwasm: &[u8]) -> std::io::Result<()> {
        let meta = CacheMeta {
            format: CACHE_FORMAT,
            source_sha256: self.source_sha256,
            engine_hash: self.engine_hash,
            cwasm_sha256: sha256(cwasm),
            cwasm_len: cwasm.len() as u64,
        };
        write_entry(dir, &self.cwasm_path, &self.meta_path, cwasm, &meta)
    }
}

/// Remember `source_sha256` as the last version of `plugin` that loaded. Best effort:
/// without it a start-up only has nothing to serve while the plugin compiles.
pub(crate) fn remember(dir: &Path, plugin: &str, source_sha256: &[u8; 32]) {
    let path = last_path(dir, plugin);
    if std::fs::read(&path).is_ok_and(|old| old == hex(source_sha256).as_bytes()) {
        return;
    }
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| write_atomically(&path, hex(source_sha256).as_bytes())) {
        tracing::debug!(plugin, file = %path.display(), error = %e, "cannot remember the plugin's version");
    }
}

/// The SHA-256 `remember` last stored for `plugin`.
pub(crate) fn previous(dir: &Path, plugin: &str) -> Option<[u8; 32]> {
    let text = read_bounded(&last_path(dir, plugin), 65).ok()?;
    if text.len() != 64 {
        return None;
    }
    let mut sha = [0u8; 32];
    for (byte, pair) in sha.iter_mut().zip(text.chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(sha)
}

fn last_path(dir: &Path, plugin: &str) -> PathBuf {
    dir.join(format!("{}.last", hex(&sha256(plugin.as_bytes()))))
}

/// Remove the least recently used entries until the `.cwasm` files take at most
/// `max_bytes`, sparing `keep` (just written), and temporary files a crash left
/// behind. Best effort: another gateway may be removing the same files.
pub(crate) fn evict(dir: &Path, max_bytes: u64, keep: &str) {
    let Ok(read) = std::fs::read_dir(dir) else { return };
    let mut entries = Vec::new();
    let mut total = 0u64;
    for item in read.flatten() {
        let path = item.path();
        let Ok(meta) = item.metadata() else { continue };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let name = item.file_name().to_string_lossy().into_owned();
        if name.contains(".tmp-") {
            if modified.elapsed().is_ok_and(|age| age > STALE_TEMPORARY) {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        if let Some(key) = name.strip_suffix(".cwasm") {
            total += meta.len();
            if key != keep {
                entries.push((modified, meta.len(), path));
            }
        }
    }
    entries.sort();
    for (_, len, cwasm) in entries {
        if total <= max_bytes {
            break;
        }
        // The meta first: without it the entry is a miss, never half an entry.
        let _ = std::fs::remove_file(cwasm.with_extension("meta"));
        if std::fs::remove_file(&cwasm).is_ok() {
            total -= len;
            tracing::debug!(file = %cwasm.display(), "compiled-plugin cache entry evicted");
        }
    }
}

/// A temporary file older than this is a crashed writer's.
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &Path, key: &str, len: usize, age: Duration) {
        for (ext, bytes) in [("cwasm", vec![0u8; len]), ("meta", vec![1u8; 8])] {
            let path = dir.join(format!("{key}.{ext}"));
            std::fs::write(&path, bytes).unwrap();
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(SystemTime::now() - age).unwrap();
        }
    }

    #[test]
    fn eviction_removes_the_least_recently_used_entries_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        entry(d, "old", 100, Duration::from_secs(300));
        entry(d, "older", 100, Duration::from_secs(400));
        entry(d, "new", 100, Duration::from_secs(10));
        entry(d, "oldest-but-kept", 100, Duration::from_secs(500));
        std::fs::write(d.join("x.cwasm.tmp-1-crashed"), b"half").unwrap();
        std::fs::File::options()
            .write(true)
            .open(d.join("x.cwasm.tmp-1-crashed"))
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        std::fs::write(d.join("y.cwasm.tmp-2-writing"), b"half").unwrap();
        remember(d, "router:/p/a.wasm", &[7; 32]);

        evict(d, 250, "oldest-but-kept");
        let mut left: Vec<String> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        let last = format!("{}.last", hex(&sha256(b"router:/p/a.wasm")));
        let mut expected = vec![
            "new.cwasm",
            "new.meta",
            "oldest-but-kept.cwasm",
            "oldest-but-kept.meta",
            &last,
            "y.cwasm.tmp-2-writing",
        ];
        expected.sort();
        assert_eq!(left, expected);
        assert_eq!(previous(d, "router:/p/a.wasm"), Some([7; 32]));
        assert_eq!(previous(d, "router:/p/b.wasm"), None);

        evict(d, 1000, "none");
        assert!(d.join("new.cwasm").exists(), "under the bound nothing goes");
    }
}
