//! Finding projects on disk. A changed sparky.yaml applies to the next lookup without
//! a restart, yet an unchanged one is not parsed again: parsed configs are cached by
//! the identity of the files they came from, so listing a thousand unchanged projects
//! (which every dispatch pass, tick and page does) costs a few `lstat`s each.
//!
//! Whatever sits in `projects/` is a problem of that project alone: a folder, FIFO or
//! symlink where sparky.yaml should be, an unreadable or oversized file, becomes the
//! project's error, and the others go on working. Only failing to read `projects/`
//! itself fails a listing.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fmt, fs, io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::{
    JobFile, ProjectConfig, ProjectError, Script,
    files::{self, Found, ReadError},
    grants, valid_name,
};
use crate::secrets::SecretsDir;

/// A project folder and its config (or why the config can't be used).
#[derive(Clone, Debug)]
pub struct Project {
    pub name: String,
    pub dir: PathBuf,
    pub config: Result<ProjectConfig, ProjectError>,
}

impl Project {
    /// The executable `job` file, used when sparky.yaml has no script.
    pub fn job_file(&self) -> PathBuf {
        self.dir.join("job")
    }
}

/// The `projects/` folder, and the configs parsed from it. Clones share the cache.
#[derive(Clone)]
pub struct Projects {
    dir: PathBuf,
    /// Where granted secrets must be; `None`: grants are not checked.
    secrets: Option<SecretsDir>,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    parses: Arc<AtomicU64>,
    /// How recent a file's last change may be for its parse to be kept; see
    /// [`RACY_WINDOW`].
    racy_window: Duration,
}

/// A file changed this recently may change again with the same size and within the
/// same timestamp tick (a second on some file systems, two on FAT), invisible to the
/// cache key: its parse is not kept, so it is read again until it is this old.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// A parsed config and the identity of the files it came from.
struct Cached {
    key: CacheKey,
    config: Result<ProjectConfig, ProjectError>,
}

/// What a parse depends on: sparky.yaml's identity and what the `job` beside it is.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CacheKey {
    config: Stamp,
    job: JobFile,
}

/// A file's identity and version as `stat` tells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether the file changed less than `window` before `now` (or, clocks being
    /// what they are, after it).
    fn is_racy(&self, now: SystemTime, window: Duration) -> bool {
        let newest = self.mtime.max(self.ctime);
        let Ok(secs) = u64::try_from(newest.0) else { return false };
        let changed = UNIX_EPOCH + Duration::new(secs, u32::try_from(newest.1).unwrap_or(0));
        now.duration_since(changed).map_or(true, |age| age < window)
    }
}

/// The example project written into an empty root.
const EXAMPLE: &str = "\
description: Says hello; edit projects/hello/sparky.yaml to make it yours
script: |
  echo \"Hello from Sparky! This is build $SPARKY_BUILD_ID of $SPARKY_PROJECT, greeting $NAME.\"
vars:
  - name: NAME
    type: text
    default: world
    description: Who to greet
keep_builds: 20
timeout: 5m
";

impl Projects {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Projects {
            dir: dir.into(),
            secrets: None,
            cache: Arc::default(),
            parses: Arc::default(),
            racy_window: RACY_WINDOW,
        }
    }

    /// Projects whose `secrets:` must name secrets in `secrets`: a name it lacks makes
    /// the project's config an error.
    pub fn with_secrets(mut self, secrets: SecretsDir) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// The secrets folder, if grants are checked against one.
    pub fn secrets(&self) -> Option<&SecretsDir> {
        self.secrets.as_ref()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many times a sparky.yaml was read and parsed, i.e. not served from the
    /// cache (by this value and its clones).
    pub fn parses(&self) -> u64 {
        self.parses.load(Ordering::Relaxed)
    }

    /// Every project, sorted by name. Folders without sparky.yaml, and names outside
    /// `[A-Za-z0-9][A-Za-z0-9._-]*`, are not projects; a symlink with a project's
    /// name is a project in error. Fails only if `projects/` can't be read.
    pub async fn list(&self) -> io::Result<Vec<Project>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.list_blocking()).await.map_err(io::Error::other)?
    }

    /// The project called `name`, or `None` if there is none (invalid names included,
    /// so that no name can reach outside `projects/`). A broken project is
    /// `Some` with its error; this fails only if the lookup itself can't run.
    pub async fn get(&self, name: &str) -> io::Result<Option<Project>> {
        if !valid_name(name) {
            return Ok(None);
        }
        let (this, name) = (self.clone(), name.to_string());
        tokio::task::spawn_blocking(move || this.find(&name, &this.known_secrets()))
            .await
            .map_err(io::Error::other)
    }

    /// The projects called `names` that exist (as [`Projects::get`] finds each), in
    /// one trip to the blocking pool: for a few names, cheaper than [`Projects::list`].
    pub async fn get_many(&self, names: Vec<String>) -> io::Result<Vec<Project>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let known = this.known_secrets();
            names.iter().filter(|name| valid_name(name)).filter_map(|name| this.find(name, &known)).collect()
        })
        .await
        .map_err(io::Error::other)
    }

    /// The project called `name` (a valid name), with its grants checked against
    /// `known`; `None`, and forgotten by the cache, if there is none (blocking).
    fn find(&self, name: &str, known: &Option<BTreeSet<String>>) -> Option<Project> {
        let kind = fs::symlink_metadata(self.dir.join(name)).map(|meta| meta.file_type());
        let project = self.load(name, kind).map(|p| self.check_grants(p, known));
        if project.is_none() {
            self.entries().remove(name);
        }
        project
    }

    fn list_blocking(&self) -> io::Result<Vec<Project>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry?;
            if let Ok(name) = entry.file_name().into_string()
                && valid_name(&name)
            {
                // The listing says what each entry is (no `stat` per project).
                names.push((name, entry.file_type()));
            }
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let known = self.known_secrets();
        let projects: Vec<Project> = names
            .into_iter()
            .filter_map(|(name, kind)| self.load(&name, kind))
            .map(|p| self.check_grants(p, &known))
            .collect();
        // Forget projects that are gone, so that the cache holds what `projects/` does.
        let listed: HashSet<&str> = projects.iter().map(|p| p.name.as_str()).collect();
        self.entries().retain(|name, _| listed.contains(name.as_str()));
        Ok(projects)
    }

    /// Looks at `projects/NAME` (blocking), which `kind` says what it is (from the
    /// listing, or `lstat`): `None` if it isn't a project.
    fn load(&self, name: &str, kind: io::Result<fs::FileType>) -> Option<Project> {
        let dir = self.dir.join(name);
        let shown_dir = format!("projects/{name}");
        let project = |config| Some(Project { name: name.into(), dir: dir.clone(), config });
        let fail = |file: String, problem: String| project(Err(ProjectError { file, line: None, problem }));

        match kind {
            Ok(kind) if kind.is_dir() => {}
            Ok(kind) if kind.is_symlink() => {
                return fail(
                    shown_dir,
                    "a symlink; a project must be a folder inside projects/ (symlinks are not followed)"
                        .into(),
                );
            }
            // Files and the like beside the project folders are not projects.
            Ok(_) => return None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => return fail(shown_dir, format!("unreadable ({e})")),
        }
        let shown = format!("{shown_dir}/sparky.yaml");
        // Taken before looking, so that a change made while reading counts as recent.
        let now = SystemTime::now();
        let (path, meta) = match files::find(&dir, &shown_dir, "sparky.yaml") {
            Found::Missing => return None,
            Found::Unusable(problem) => return fail(shown, problem),
            Found::File { path, meta } => (path, meta),
        };
        let stamp = Stamp::of(&meta);
        let cached = self
            .entries()
            .get(name)
            .filter(|cached| cached.key.config == stamp)
            .map(|cached| (cached.key.job.clone(), cached.config.clone()));
        let job = match cached {
            // `job` counts only without a script: an unchanged sparky.yaml with one of
            // its own needs no look at it.
            Some((_, config)) if matches!(&config, Ok(c) if matches!(c.script, Script::Inline(_))) => {
                return project(config);
            }
            Some((cached_job, config)) => {
                let job = files::job(&dir, &shown_dir);
                if job == cached_job {
                    return project(config);
                }
                job
            }
            None => files::job(&dir, &shown_dir),
        };
        let key = CacheKey { config: stamp, job };

        self.parses.fetch_add(1, Ordering::Relaxed);
        let (config, keep) = match files::read_config(&path, &meta, &shown) {
            Ok(text) => (ProjectConfig::parse_with_job(&shown, &text, &key.job), true),
            Err(ReadError::Content(error)) => (Err(error), true),
            Err(ReadError::Io(error)) => (Err(error), false),
        };
        let mut entries = self.entries();
        if keep && !key.config.is_racy(now, self.racy_window) {
            entries.insert(name.into(), Cached { key, config: config.clone() });
        } else {
            entries.remove(name);
        }
        drop(entries);
        project(config)
    }

    /// The names in the secrets folder (`None`: nothing to check against). A folder
    /// that can't be read has no names, so every grant says so.
    fn known_secrets(&self) -> Option<BTreeSet<String>> {
        let secrets = self.secrets.as_ref()?;
        Some(secrets.names().unwrap_or_else(|error| {
            tracing::warn!(dir = %secrets.dir().display(), %error, "could not read the secrets folder");
            BTreeSet::new()
        }))
    }

    /// `project`, in error if it is granted a secret `known` lacks. (Checked on every
    /// look, not cached: secrets come and go without sparky.yaml changing.)
    fn check_grants(&self, mut project: Project, known: &Option<BTreeSet<String>>) -> Project {
        if let (Some(known), Ok(config)) = (known, &project.config) {
            let file = format!("projects/{}/sparky.yaml", project.name);
            if let Some(problem) = grants::missing(&config.secrets, known) {
                project.config = Err(ProjectError { file, line: config.secrets_line, problem });
            } else if let Some(name) = config.named_secrets().into_iter().find(|name| !known.contains(*name))
            {
                let problem =
                    format!("{name} is not a secret Sparky has (no file {name} in its secrets folder)");
                project.config = Err(ProjectError { file, line: None, problem });
            }
        }
        project
    }

    /// The cache, locked. Entries are only ever replaced whole, so one left by a
    /// panicking thread is still sound.
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// On a root without a `projects/` folder, creates it with the example project
    /// `hello`. Returns whether it did.
    pub async fn create_example_if_empty(&self) -> io::Result<bool> {
        if tokio::fs::try_exists(&self.dir).await? {
            return Ok(false);
        }
        let hello = self.dir.join("hello");
        tokio::fs::create_dir_all(&hello).await?;
        tokio::fs::write(hello.join("sparky.yaml"), EXAMPLE).await?;
        Ok(true)
    }
}

impl fmt::Debug for Projects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Projects").field("dir", &self.dir).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
