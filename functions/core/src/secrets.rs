//! Secrets. [`Secret`]: a value that never prints (tokens, webhook secrets,
//! credentials). [`SecretsDir`]: the folder of job secrets, one file per secret, named
//! by it and holding its value — on Kubernetes a mounted Secret, whose keys become
//! such files. Projects are granted secrets by name (`secrets:` in sparky.yaml). A leaf
//! module: configuration, projects, the HTTP edge and report storage all use it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt, fs, io,
    path::{Path, PathBuf},
};

/// A secret value that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What every job token starts with (so that a token is told from the API token at a
/// glance, in a log or by a secret scanner).
pub const JOB_TOKEN_PREFIX: &str = "sparky-job-";

/// 32 random bytes from the OS, in hex: for tokens and session ids.
pub fn random_hex() -> Result<Secret, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)?;
    Ok(Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// A new job token: the prefix and 32 random bytes in hex.
pub fn new_job_token() -> Result<Secret, getrandom::Error> {
    Ok(Secret::new(format!("{JOB_TOKEN_PREFIX}{}", random_hex()?.expose())))
}

/// How a job token is kept: its SHA-256, in hex (the token itself is only in the job's
/// environment).
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A secret's value may be at most this long.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Whether `name` may name a secret: a shell variable name, `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A granted secret that can't be given to a job.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {name} is not in {dir} (no file of that name)")]
    Missing { name: String, dir: PathBuf },
    #[error("secret {name} could not be read")]
    Unreadable {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("secret {name} is larger than {MAX_SECRET_BYTES} bytes")]
    TooLarge { name: String },
}

/// The folder of job secrets.
#[derive(Clone, Debug)]
pub struct SecretsDir {
    dir: PathBuf,
}

impl SecretsDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SecretsDir { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The names of the secrets there (blocking): files with valid names. Names
    /// starting with `.` (a Kubernetes Secret volume's `..data`) are not secrets; a
    /// missing folder holds none.
    pub fn names(&self) -> io::Result<BTreeSet<String>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(e) => return Err(e),
        };
        let mut names = BTreeSet::new();
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            // A Secret volume's keys are symlinks into `..data`: follow them.
            if valid_secret_name(&name) && fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
                names.insert(name);
            }
        }
        Ok(names)
    }

    /// The values of `names` (blocking), a trailing line break taken off each.
    pub fn values<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<BTreeMap<String, Secret>, SecretError> {
        let mut values = BTreeMap::new();
        for name in names {
            let path = self.dir.join(name);
            let unreadable = |source| SecretError::Unreadable { name: name.into(), source };
            let meta = match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => meta,
                Ok(_) => return Err(SecretError::Missing { name: name.into(), dir: self.dir.clone() }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(SecretError::Missing { name: name.into(), dir: self.dir.clone() });
                }
                Err(e) => return Err(unreadable(e)),
            };
            if meta.len() > MAX_SECRET_BYTES {
                return Err(SecretError::TooLarge { name: name.into() });
            }
            let bytes = fs::read(&path).map_err(unreadable)?;
            let text = String::from_utf8_lossy(&bytes);
            let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
            values.insert(name.to_string(), Secret::new(value));
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_tokens_are_random_and_kept_as_hashes() {
        let (a, b) = (new_job_token().expect("token"), new_job_token().expect("token"));
        assert!(a.expose().starts_with(JOB_TOKEN_PREFIX) && a.expose().len() == JOB_TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert_eq!(token_hash(a.expose()), token_hash(a.expose()));
        assert_ne!(token_hash(a.expose()), token_hash(b.expose()));
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn reads_a_folder_of_secrets_as_a_mounted_secret_lays_it_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("..2026_12_01");
        fs::create_dir(&data).expect("mkdir");
        fs::write(data.join("DEPLOY_TOKEN"), "t0k3n\n").expect("write");
        fs::write(data.join("NPM"), "npm-value").expect("write");
        std::os::unix::fs::symlink("..2026_12_01", dir.path().join("..data")).expect("symlink");
        for name in ["DEPLOY_TOKEN", "NPM"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.path().join(name)).expect("symlink");
        }
        fs::write(dir.path().join("not-a-name"), "x").expect("write");
        let secrets = SecretsDir::new(dir.path());
        let names: Vec<String> = secrets.names().expect("names").into_iter().collect();
        assert_eq!(names, ["DEPLOY_TOKEN", "NPM"]);
        let values = secrets.values(["DEPLOY_TOKEN", "NPM"]).expect("values");
        assert_eq!(values["DEPLOY_TOKEN"].expose(), "t0k3n");
        assert_eq!(values["NPM"].expose(), "npm-value");
        let missing = secrets.values(["NOPE"]).unwrap_err().to_string();
        assert!(missing.starts_with("secret NOPE is not in"), "{missing}");
        assert!(SecretsDir::new(dir.path().join("none")).names().expect("names").is_empty());
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
