//! Git repositories as projects name them: comparing repository URLs written in
//! different forms, and matching branch names against a project's `scm.branch` glob.

/// A repository URL reduced to what identifies the repository: host, port and path.
/// So `https://GitHub.com/acme/app.git`, `git@github.com:acme/app`,
/// `ssh://git@github.com:22/acme/app/` and `http://user@github.com/acme/app` compare
/// equal: scheme, user, a trailing `/` and `.git` are dropped, case is ignored, and a
/// scheme's default port (80 for http, 443 for https, 22 for ssh, 9418 for git) is
/// the same as none. Any other port names another server: `https://host:8443/acme/app`
/// is not `https://host/acme/app`. Local repositories (`/srv/git/app.git`,
/// `file:///srv/git/app`) become `file:` plus their path.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim();
    let local = if let Some(path) = url.strip_prefix("file://") {
        Some(path)
    } else if url.starts_with('/') {
        Some(url)
    } else {
        None
    };
    if let Some(path) = local {
        return format!("file:{}", strip_suffixes(path));
    }
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, url),
    };
    let (authority, path) = match rest.find('/') {
        // scp-like `user@host:owner/repo`: the first `:` comes before any `/`, and
        // what follows it is the path, never a port.
        Some(slash) if scheme.is_none() && rest[..slash].contains(':') => {
            let colon = rest.find(':').unwrap_or(slash);
            (&rest[..colon], &rest[colon + 1..])
        }
        Some(slash) => (&rest[..slash], &rest[slash + 1..]),
        None => match rest.split_once(':') {
            Some((host, path)) if scheme.is_none() => (host, path),
            _ => (rest, ""),
        },
    };
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = split_port(host_port);
    let port = port.filter(|port| Some(*port) != scheme.as_deref().and_then(default_port));
    let port = port.map(|port| format!(":{port}")).unwrap_or_default();
    format!("{host}{port}/{}", strip_suffixes(path.trim_start_matches('/'))).to_lowercase()
}

/// `host:port` → `(host, Some(port))`; an IPv6 host keeps its brackets, and an
/// empty port (`host:`) is none.
fn split_port(host_port: &str) -> (&str, Option<&str>) {
    let after_host = match host_port.strip_prefix('[') {
        Some(inner) => inner.find(']').map_or(host_port.len(), |end| end + 2),
        None => host_port.find(':').unwrap_or(host_port.len()),
    };
    let (host, port) = host_port.split_at(after_host);
    match port.strip_prefix(':') {
        Some(port) if !port.is_empty() => (host, Some(port)),
        _ => (host, None),
    }
}

/// The port a URL scheme uses when it names none.
fn default_port(scheme: &str) -> Option<&'static str> {
    match scheme {
        "http" => Some("80"),
        "https" => Some("443"),
        "ssh" | "git+ssh" | "ssh+git" => Some("22"),
        "git" => Some("9418"),
        _ => None,
    }
}

fn strip_suffixes(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    path.trim_end_matches('/')
}

/// Whether `name` matches `glob`: `*` matches any run of characters (`/` included),
/// `?` any one character, everything else itself.
pub fn glob_match(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    let (mut gi, mut ni) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ni < n.len() {
        match g.get(gi) {
            Some('*') => {
                backtrack = Some((gi, ni));
                gi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                gi += 1;
                ni += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    gi = star + 1;
                    ni = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

/// Whether a ref name says "delete": Git hosts send forty zeros as the new commit.
pub fn is_zero_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.chars().all(|c| c == '0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_repository_in_every_spelling_compares_equal() {
        let same = [
            "https://github.com/acme/app.git",
            "https://GitHub.com/acme/app",
            "http://user:pw@github.com/acme/app/",
            "git@github.com:acme/app.git",
            "ssh://git@github.com/acme/app.git",
            "ssh://git@github.com:22/acme/app",
            "git://github.com/acme/app.git",
            "github.com:acme/app",
        ];
        for url in same {
            assert_eq!(normalize_url(url), "github.com/acme/app", "{url}");
        }
        assert_ne!(normalize_url("https://github.com/acme/app2"), normalize_url(same[0]));
        assert_ne!(normalize_url("https://gitlab.com/acme/app"), normalize_url(same[0]));
        assert_eq!(normalize_url("/srv/git/app.git"), normalize_url("file:///srv/git/app/"));
        assert_eq!(
            normalize_url("https://gitlab.example.com/group/sub/app.git"),
            "gitlab.example.com/group/sub/app"
        );
    }

    #[test]
    fn a_port_other_than_the_schemes_default_is_another_server() {
        let base = normalize_url("https://git.example.com/a/b");
        for same in [
            "https://git.example.com:443/a/b",
            "http://git.example.com:80/a/b.git",
            "https://git.example.com:/a/b",
            "ssh://git@git.example.com:22/a/b.git",
            "git://git.example.com:9418/a/b",
            "git@git.example.com:a/b.git",
        ] {
            assert_eq!(normalize_url(same), base, "{same}");
        }
        for other in [
            "https://git.example.com:8443/a/b",
            "http://git.example.com:8080/a/b",
            "https://user:pw@git.example.com:8443/a/b.git",
            "ssh://git@git.example.com:2222/a/b.git",
        ] {
            assert_ne!(normalize_url(other), base, "{other}");
        }
        assert_eq!(
            normalize_url("https://git.example.com:8443/a/b"),
            normalize_url("https://user@Git.Example.com:8443/a/b.git/")
        );
        assert_ne!(
            normalize_url("https://git.example.com:8443/a/b"),
            normalize_url("https://git.example.com:9443/a/b")
        );
        assert_eq!(
            normalize_url("ssh://git@git.example.com:2222/a/b"),
            normalize_url("ssh://git.example.com:2222/a/b.git")
        );
        assert_eq!(normalize_url("http://[::1]:80/a/b"), normalize_url("http://[::1]/a/b"));
        assert_ne!(normalize_url("http://[::1]:8080/a/b"), normalize_url("http://[::1]/a/b"));
        // In the scp-like form, what follows the `:` is a path, never a port.
        assert_eq!(normalize_url("git@git.example.com:8443/b.git"), "git.example.com/8443/b");
    }

    #[test]
    fn globs_match_branch_names() {
        for (glob, name, expected) in [
            ("main", "main", true),
            ("main", "maint", false),
            ("*", "feature/x", true),
            ("feature/*", "feature/login", true),
            ("feature/*", "fix/login", false),
            ("release-?.?", "release-1.2", true),
            ("release-?.?", "release-10.2", false),
            ("*-stable", "4.2-stable", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ] {
            assert_eq!(glob_match(glob, name), expected, "{glob} ~ {name}");
        }
        assert!(is_zero_sha("0000000000000000000000000000000000000000"));
        assert!(!is_zero_sha("0a00"));
    }
}
