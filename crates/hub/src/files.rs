//! `--static DIR`: the files of a directory at `/` and every path that is not a route, kept inside
//! that directory.
//!
//! tower-http's `ServeDir` refuses `..` and absolute components, but it opens whatever a path
//! names, so a symlink in the directory that points outside it (`DIR/etc -> /etc`, an uploaded
//! link) served the files it reaches. Here a request whose path resolves (symlinks followed) to a
//! file or directory outside the directory, or a directory whose `index.html` does, is answered
//! 404 like a missing file, unless [`crate::HubConfig::static_follow_symlinks`] allows it.
//! Symlinks that stay inside the directory work as before.
//!
//! The check resolves the path and then `ServeDir` opens it: a link swapped in between is not
//! caught. This guards against a directory's contents, not against a local user racing the hub.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::response::IntoResponse;

use crate::error::ApiError;

/// `router` with the files of `dir` as its fallback (see [the module docs](self)).
pub(crate) fn with_static_dir<S>(router: Router<S>, dir: &Path, follow_symlinks: bool) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    use axum::handler::HandlerWithoutStateExt;
    let files = tower_http::services::ServeDir::new(dir)
        .call_fallback_on_method_not_allowed(true)
        .not_found_service(crate::not_found.into_service());
    // Resolved once: the root every served path must stay under.
    let root = Arc::new(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned()));
    router.fallback(move |request: Request| {
        let mut files = files.clone();
        let root = root.clone();
        async move {
            let reads = matches!(*request.method(), Method::GET | Method::HEAD);
            if reads && !follow_symlinks && escapes(&root, request.uri().path()).await {
                return ApiError::not_found().into_response();
            }
            match files.try_call(request).await {
                Ok(response) => response.into_response(),
                Err(err) => {
                    ApiError::internal(format!("reading a static file: {err}")).into_response()
                }
            }
        }
    })
}

/// Whether the request path `path` names, once symlinks are resolved, something outside `root`
/// (itself resolved): the file, or the `index.html` of a directory. A path that does not exist or
/// that `ServeDir` refuses anyway (`..`, a bad escape) is left to it.
async fn escapes(root: &Path, path: &str) -> bool {
    let Some(decoded) = percent_decode(path.trim_start_matches('/')) else {
        return false;
    };
    let mut candidate = root.to_path_buf();
    for component in Path::new(&decoded).components() {
        match component {
            Component::Normal(part) => candidate.push(part),
            Component::CurDir => {}
            _ => return false,
        }
    }
    let Ok(real) = tokio::fs::canonicalize(&candidate).await else {
        return false;
    };
    if !real.starts_with(root) {
        return true;
    }
    if real.is_dir()
        && let Ok(index) = tokio::fs::canonicalize(real.join("index.html")).await
    {
        return !index.starts_with(root);
    }
    false
}

/// `%XX` decoding of a URL path, as `ServeDir` does it (a `+` is a plus); `None` when the
/// result is not UTF-8.
fn percent_decode(path: &str) -> Option<PathBuf> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some(hex(*bytes.get(i + 1)?)? << 4 | hex(*bytes.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_percent_decoded_like_serve_dir() {
        assert_eq!(percent_decode("a%20b/c+d"), Some(PathBuf::from("a b/c+d")));
        assert_eq!(percent_decode("%2e%2E/x"), Some(PathBuf::from("../x")));
        assert_eq!(percent_decode("100%"), Some(PathBuf::from("100%")));
        assert_eq!(percent_decode("%ff"), None);
    }

    #[tokio::test]
    async fn links_out_of_the_root_escape_and_links_within_do_not() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::fs::write(outside.path().join("index.html"), "i").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("page.html"), "p").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("leak")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink(root.join("page.html"), root.join("alias.html")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("index.html"),
            root.join("sub/index.html"),
        )
        .unwrap();
        for (path, escaped) in [
            ("/page.html", false),
            ("/alias.html", false),
            ("/missing", false),
            ("/", false),
            ("/leak", true),
            ("/out/secret", true),
            ("/out", true),
            ("/%6ceak", true),
            ("/sub/", true),
            ("/sub", true),
        ] {
            assert_eq!(escapes(&root, path).await, escaped, "{path}");
        }
    }
}
