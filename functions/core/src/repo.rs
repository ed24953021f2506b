//! Git repositories as projects name them: comparing repository URLs written in
//! different forms, and matching branch names against a project's `scm.branch` glob.

/// A repository URL reduced to what identifies the repository, so that
/// `https://GitHub.com/acme/app.git`, `git@github.com:acme/app`,
/// `ssh://git@github.com:22/acme/app/` and `http://user@github.com/acme/app` compare
/// equal. Scheme, user, port, a trailing `/` and `.git` are dropped and case is
/// ignored; local repositories (`/srv/git/app.git`, `file:///srv/git/app`) become
/// `file:` plus their path.
pub fn normalize_url(url: &str) -> String {
    let mut rest = url.trim();
    let local = if let Some(path) = rest.strip_prefix("file://") {
        Some(path)
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    };
    if let Some(path) = local {
        return format!("file:{}", strip_suffixes(path));
    }
    if let Some(i) = rest.find("://") {
        rest = &rest[i + 3..];
    }
    let (authority, path) = match rest.find('/') {
        // scp-like `user@host:owner/repo`: the first `:` comes before any `/`.
        Some(slash) if rest[..slash].contains(':') && !url.contains("://") => {
            let colon = rest.find(':').unwrap_or(slash);
            (&rest[..colon], &rest[colon + 1..])
        }
        Some(slash) => (&rest[..slash], &rest[slash + 1..]),
        None => match rest.split_once(':') {
            Some((host, path)) => (host, path),
            None => (rest, ""),
        },
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = host.split(':').next().unwrap_or(host);
    format!("{}/{}", host, strip_suffixes(path.trim_start_matches('/'))).to_lowercase()
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
