//! From a request path to a file inside the root, with no way out.
//!
//! Two independent defences. First the path is checked as text: it is joined
//! onto the root segment by segment, and a segment that could climb or that a
//! file system might read specially (`.`, `..`, a backslash, a NUL or other
//! control character) refuses the whole request. Then the joined path is
//! canonicalized, resolving every symlink, and must still lie inside the
//! canonical root; a symlink leading out makes the file absent.

use std::path::{Component, Path, PathBuf};

/// Why a request path was not looked up.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PathError {
    /// Not `prefix` or `prefix/…`: not this mount's path (404).
    NotUnderPrefix,
    /// A segment that tries to leave the root or is not a plain name (400).
    Malformed,
}

/// A request path reduced to the segments below the mount.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RequestPath<'a> {
    /// Non-empty segments; doubled slashes are dropped, as `canonical_path` does.
    pub(super) segments: Vec<&'a str>,
    pub(super) trailing_slash: bool,
}

impl<'a> RequestPath<'a> {
    pub(super) fn parse(path: &'a str, prefix: Option<&str>) -> Result<RequestPath<'a>, PathError> {
        let rest = match prefix.filter(|p| *p != "/") {
            Some(prefix) => match path.strip_prefix(prefix) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
                _ => return Err(PathError::NotUnderPrefix),
            },
            None if path.starts_with('/') => path,
            None => return Err(PathError::Malformed),
        };
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        if !segments.iter().all(|s| is_plain_name(s)) {
            return Err(PathError::Malformed);
        }
        Ok(RequestPath { segments, trailing_slash: rest.ends_with('/') })
    }

    /// Whether a segment is hidden (see [`is_hidden`]).
    pub(super) fn is_hidden(&self) -> bool {
        self.segments.iter().any(|s| is_hidden(s))
    }

    /// The last segment, the name the client asked for (empty for the mount's root).
    pub(super) fn last(&self) -> &str {
        self.segments.last().copied().unwrap_or("")
    }
}

/// A name that, joined onto a directory, names an entry of that directory and
/// nothing else, on any platform: Windows reads `\` as a separator, and `C:` or
/// `\\?\` as prefixes, which the component check catches.
fn is_plain_name(segment: &str) -> bool {
    let mut components = Path::new(segment).components();
    !segment.contains('\\')
        && !segment.chars().any(char::is_control)
        && matches!((components.next(), components.next()), (Some(Component::Normal(n)), None) if n == segment)
}

/// Dot files (`.git`, `.env`, `.DS_Store`) are left in export folders by
/// accident far more often than on purpose, so they count as absent.
/// `.well-known` (RFC 8615) is the exception: it exists to be served.
fn is_hidden(segment: &str) -> bool {
    segment.starts_with('.') && segment != ".well-known"
}

/// The canonical root and the checks made against it.
#[derive(Debug)]
pub(super) struct Root {
    canonical: PathBuf,
}

/// What a request path found on disk.
pub(super) enum Lookup {
    /// `logical` is the path as requested (it names the file for Content-Type
    /// and caching, and its siblings carry the precompressed variants);
    /// `canonical` is the file actually opened.
    File { logical: PathBuf, canonical: PathBuf },
    /// A directory with an index, asked for without the trailing slash.
    AddSlash,
    /// No file here, for whatever reason; deliberately not told apart.
    Absent,
}

impl Root {
    pub(super) fn new(root: &Path) -> std::io::Result<Root> {
        let canonical = std::fs::canonicalize(root)?;
        if !canonical.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{}` is not a directory", root.display()),
            ));
        }
        Ok(Root { canonical })
    }

    pub(super) fn path(&self) -> &Path {
        &self.canonical
    }

    /// Whether a canonical path is inside the root with no hidden component
    /// there, so a visible symlink to `.git/config` does not serve it either.
    pub(super) fn contains(&self, canonical: &Path) -> bool {
        canonical.strip_prefix(&self.canonical).is_ok_and(|rel| {
            rel.components().all(|c| matches!(c, Component::Normal(n) if !n.to_str().is_some_and(is_hidden)))
        })
    }

    /// The canonical path of a regular file at `path`, if it is one inside the
    /// root. Devices and FIFOs are refused: opening a FIFO would block.
    pub(super) async fn regular_file(&self, path: &Path) -> Option<PathBuf> {
        let canonical = self.canonical_inside(path).await?;
        let meta = tokio::fs::metadata(&canonical).await.ok()?;
        meta.is_file().then_some(canonical)
    }

    async fn canonical_inside(&self, path: &Path) -> Option<PathBuf> {
        let canonical = tokio::fs::canonicalize(path).await.ok()?;
        self.contains(&canonical).then_some(canonical)
    }

    /// Directories serve their `index.html` and are never listed. A file asked
    /// for with a trailing slash is absent: relative links in it would resolve
    /// wrongly, and nginx answers the same.
    pub(super) async fn lookup(&self, req: &RequestPath<'_>) -> Lookup {
        if req.is_hidden() {
            return Lookup::Absent;
        }
        let logical: PathBuf = req.segments.iter().fold(self.canonical.clone(), |path, s| path.join(s));
        let Some(canonical) = self.canonical_inside(&logical).await else {
            return Lookup::Absent;
        };
        let Ok(meta) = tokio::fs::metadata(&canonical).await else {
            return Lookup::Absent;
        };
        if meta.is_file() && !req.trailing_slash {
            return Lookup::File { logical, canonical };
        }
        if !meta.is_dir() {
            return Lookup::Absent;
        }
        let index = logical.join("index.html");
        match self.regular_file(&index).await {
            Some(canonical) if req.trailing_slash => Lookup::File { logical: index, canonical },
            Some(_) => Lookup::AddSlash,
            None => Lookup::Absent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<'a>(path: &'a str, prefix: Option<&str>) -> Result<RequestPath<'a>, PathError> {
        RequestPath::parse(path, prefix)
    }

    fn ok<'a>(segments: &[&'a str], trailing_slash: bool) -> Result<RequestPath<'a>, PathError> {
        Ok(RequestPath { segments: segments.to_vec(), trailing_slash })
    }

    #[test]
    fn prefix_is_stripped() {
        assert_eq!(parse("/static/css/a.css", Some("/static")), ok(&["css", "a.css"], false));
        assert_eq!(parse("/static/", Some("/static")), ok(&[], true));
        assert_eq!(parse("/static", Some("/static")), ok(&[], false));
        assert_eq!(parse("/staticfoo/a.css", Some("/static")), Err(PathError::NotUnderPrefix));
        assert_eq!(parse("/other/a.css", Some("/static")), Err(PathError::NotUnderPrefix));
        assert_eq!(parse("/a.css", Some("/")), ok(&["a.css"], false));
        assert_eq!(parse("/", None), ok(&[], true));
        assert_eq!(parse("/app/dash/", None), ok(&["app", "dash"], true));
    }

    #[test]
    fn doubled_slashes_are_dropped() {
        assert_eq!(parse("//etc//passwd", None), ok(&["etc", "passwd"], false));
    }

    #[test]
    fn escapes_are_malformed() {
        for path in ["/..", "/a/../b", "/a/./b", "/.", "/a\\..\\b", "/a\\b", "/a\0b", "/a\nb", "/a\u{7f}"] {
            assert_eq!(parse(path, None), Err(PathError::Malformed), "{path:?}");
        }
        assert_eq!(parse("relative", None), Err(PathError::Malformed));
    }

    #[test]
    fn percent_is_a_literal_character() {
        assert_eq!(parse("/%2e%2e/x", None), ok(&["%2e%2e", "x"], false));
    }

    #[test]
    fn hidden_segments() {
        assert!(parse("/.env", None).unwrap().is_hidden());
        assert!(parse("/a/.git/config", None).unwrap().is_hidden());
        assert!(!parse("/.well-known/security.txt", None).unwrap().is_hidden());
        assert!(!parse("/a.b/c", None).unwrap().is_hidden());
    }
}
