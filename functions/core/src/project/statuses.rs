//! `scm.statuses:` in sparky.yaml: commit statuses on the project's Git host, posted
//! for every build with a commit as its status changes (see `crate::outbox`).
//!
//! ```yaml
//! scm:
//!   url: https://github.com/acme/app.git
//!   statuses:
//!     host: github           # github, gitlab or gitea (Forgejo too)
//!     token: GITHUB_TOKEN    # a secret (secrets folder) holding the host's API token
//!     api: https://api.github.com   # optional: the host's API base URL
//!     context: sparky/app    # optional; default sparky/<project>
//!     repo: acme/app         # optional: the repository on the host, when scm.url
//!                            # doesn't say (a mirror, a local path); needs `api`
//! ```
//!
//! The API base defaults from `scm.url`'s host: `https://api.github.com` for
//! github.com, `https://HOST/api/v3` for GitHub Enterprise, `https://HOST/api/v4` for
//! GitLab, `https://HOST/api/v1` for Gitea.

use serde::Deserialize;

use crate::secrets::valid_secret_name;

/// Which API a Git host speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GitHost {
    Github,
    Gitlab,
    /// Gitea and Forgejo.
    Gitea,
}

impl GitHost {
    pub fn as_str(self) -> &'static str {
        match self {
            GitHost::Github => "github",
            GitHost::Gitlab => "gitlab",
            GitHost::Gitea => "gitea",
        }
    }
}

/// `scm.statuses` as written.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    pub host: GitHost,
    /// The name of the secret holding the API token.
    pub token: String,
    #[serde(default)]
    pub api: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default)]
    pub repo: Option<String>,
}

/// A repository as its host's API names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repository {
    /// `scheme://host[:port]` of the web URL (`https` for ssh URLs).
    pub origin: String,
    pub host: String,
    /// `owner/repo`, or `group/subgroup/project` on GitLab.
    pub path: String,
}

impl StatusConfig {
    /// The problem with the settings, if any; `scm_url` is the project's `scm.url`.
    pub fn check(&self, scm_url: &str) -> Result<(), String> {
        if !valid_secret_name(&self.token) {
            return Err(format!(
                "scm.statuses.token {:?} must name a secret (letters, digits, `_`)",
                self.token
            ));
        }
        if let Some(api) = &self.api
            && !(api.starts_with("https://") || api.starts_with("http://"))
        {
            return Err(format!("scm.statuses.api {api:?} must be an http(s) URL"));
        }
        if self.context.as_deref().is_some_and(|c| c.trim().is_empty() || c.len() > 255) {
            return Err("scm.statuses.context must be 1 to 255 characters".into());
        }
        let (_, path) = self.endpoint(scm_url)?;
        if self.host != GitHost::Gitlab && path.split('/').count() != 2 {
            return Err(format!(
                "scm.statuses: {} repositories are owner/name, not {path}",
                self.host.as_str()
            ));
        }
        Ok(())
    }

    /// The host API's base URL (without a trailing `/`) and the repository's path on
    /// the host, for a build of `scm_url`.
    pub fn endpoint(&self, scm_url: &str) -> Result<(String, String), String> {
        let repo = Repository::of(scm_url);
        let path = match (&self.repo, &repo) {
            (Some(path), _) => {
                let path = path.trim_matches('/').to_string();
                if path.is_empty() || path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
                    return Err(format!(
                        "scm.statuses.repo {path:?} is not a repository path like owner/name"
                    ));
                }
                path
            }
            (None, Some(repo)) => repo.path.clone(),
            (None, None) => {
                return Err(format!(
                    "scm.statuses: can't tell the repository from scm.url {scm_url:?}; set scm.statuses.repo"
                ));
            }
        };
        let api = match (&self.api, &repo) {
            (Some(api), _) => api.trim_end_matches('/').to_string(),
            (None, Some(repo)) => self.default_api(repo),
            (None, None) => return Err("scm.statuses: set scm.statuses.api, the host's API URL".into()),
        };
        Ok((api, path))
    }

    fn default_api(&self, repo: &Repository) -> String {
        match self.host {
            GitHost::Github if repo.host == "github.com" => "https://api.github.com".into(),
            GitHost::Github => format!("{}/api/v3", repo.origin),
            GitHost::Gitlab => format!("{}/api/v4", repo.origin),
            GitHost::Gitea => format!("{}/api/v1", repo.origin),
        }
    }

    /// The status's context (its name on the host).
    pub fn context(&self, project: &str) -> String {
        self.context.clone().unwrap_or_else(|| format!("sparky/{project}"))
    }
}

impl Repository {
    /// The repository of a clone URL: `https://host[:port]/path(.git)`,
    /// `ssh://[user@]host[:port]/path(.git)` or `user@host:path(.git)`.
    pub fn of(url: &str) -> Option<Repository> {
        let url = url.trim();
        let (origin, host, path) = if let Some((scheme, rest)) = url.split_once("://") {
            let (authority, path) = rest.split_once('/')?;
            let authority = authority.rsplit('@').next()?;
            let host = authority.split(':').next()?.to_ascii_lowercase();
            let origin = match scheme {
                "http" | "https" => format!("{scheme}://{}", authority.to_ascii_lowercase()),
                _ => format!("https://{host}"),
            };
            (origin, host, path)
        } else {
            let (user_host, path) = url.split_once(':')?;
            let host = user_host.rsplit('@').next()?.to_ascii_lowercase();
            (format!("https://{host}"), host, path)
        };
        let path = path.trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path).to_string();
        let valid = !host.is_empty()
            && !path.is_empty()
            && path.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
        valid.then_some(Repository { origin, host, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_of_clone_urls() {
        let repo = |url| Repository::of(url).map(|r| (r.origin, r.host, r.path));
        let expect = |o: &str, h: &str, p: &str| Some((o.to_string(), h.to_string(), p.to_string()));
        assert_eq!(
            repo("https://github.com/acme/app.git"),
            expect("https://github.com", "github.com", "acme/app")
        );
        assert_eq!(
            repo("git@github.com:acme/app.git"),
            expect("https://github.com", "github.com", "acme/app")
        );
        assert_eq!(
            repo("ssh://git@gitlab.example.com:2222/group/sub/app.git"),
            expect("https://gitlab.example.com", "gitlab.example.com", "group/sub/app")
        );
        assert_eq!(
            repo("http://127.0.0.1:3000/acme/app"),
            expect("http://127.0.0.1:3000", "127.0.0.1", "acme/app")
        );
        assert_eq!(repo("https://github.com/"), None);
        assert_eq!(repo("https://github.com/acme/../x"), None);
    }

    #[test]
    fn api_bases_default_from_the_host() {
        let config = |host, api: Option<&str>| StatusConfig {
            host,
            token: "T".into(),
            api: api.map(str::to_string),
            context: None,
            repo: None,
        };
        let api = |c: StatusConfig, url: &str| c.endpoint(url).map(|(api, _)| api);
        assert_eq!(
            api(config(GitHost::Github, None), "https://github.com/acme/app").as_deref(),
            Ok("https://api.github.com")
        );
        assert_eq!(
            api(config(GitHost::Github, None), "git@ghe.corp:acme/app.git").as_deref(),
            Ok("https://ghe.corp/api/v3")
        );
        assert_eq!(
            api(config(GitHost::Gitlab, None), "https://gitlab.example.com/group/sub/app.git").as_deref(),
            Ok("https://gitlab.example.com/api/v4")
        );
        assert_eq!(
            api(config(GitHost::Gitea, None), "http://127.0.0.1:3000/acme/app").as_deref(),
            Ok("http://127.0.0.1:3000/api/v1")
        );
        assert_eq!(
            api(config(GitHost::Gitea, Some("http://x/api/v1/")), "http://h/acme/app").as_deref(),
            Ok("http://x/api/v1")
        );
        assert!(config(GitHost::Github, None).check("https://github.com/group/sub/app").is_err());
        assert!(config(GitHost::Gitlab, None).check("https://gitlab.com/group/sub/app").is_ok());
        assert!(config(GitHost::Github, Some("ftp://x")).check("https://github.com/a/b").is_err());
        assert!(
            config(GitHost::Github, Some("http://x")).check("/srv/git/app.git").is_err(),
            "which repository?"
        );
        let mirror =
            StatusConfig { repo: Some("acme/app".into()), ..config(GitHost::Github, Some("http://x/api")) };
        assert_eq!(mirror.endpoint("/srv/git/app.git"), Ok(("http://x/api".into(), "acme/app".into())));
        let no_api = StatusConfig { repo: Some("acme/app".into()), ..config(GitHost::Github, None) };
        assert!(no_api.check("/srv/git/app.git").is_err(), "which host?");
    }
}
