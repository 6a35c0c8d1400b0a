//! Files from the Hugging Face Hub through `hf-hub`, with the cache and environment variables
//! that Python's `huggingface_hub` uses, and a strictly offline mode.

use crate::error::{DataError, Result};
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use std::path::PathBuf;

/// What a repository holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoKind {
    /// A dataset repository (`datasets--owner--name` in the cache).
    Dataset,
    /// A model repository (`models--owner--name`).
    Model,
}

impl RepoKind {
    fn name(self) -> &'static str {
        match self {
            RepoKind::Dataset => "dataset",
            RepoKind::Model => "model",
        }
    }
}

/// A repository at a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoRef {
    /// `owner/name`.
    pub id: String,
    /// Dataset or model.
    pub kind: RepoKind,
    /// A branch, tag or commit hash; `main` by default.
    pub revision: String,
}

impl RepoRef {
    /// A dataset repository at `main`.
    pub fn dataset(id: &str) -> Self {
        RepoRef {
            id: id.to_string(),
            kind: RepoKind::Dataset,
            revision: "main".into(),
        }
    }

    /// A model repository at `main`.
    pub fn model(id: &str) -> Self {
        RepoRef {
            id: id.to_string(),
            kind: RepoKind::Model,
            revision: "main".into(),
        }
    }

    /// The same repository at `revision`.
    pub fn at(mut self, revision: &str) -> Self {
        self.revision = revision.to_string();
        self
    }

    fn folder(&self) -> String {
        format!("{}s--{}", self.kind.name(), self.id.replace('/', "--"))
    }
}

/// Access to the Hub and its local cache, configured like `huggingface_hub`.
#[derive(Clone, Debug)]
pub struct Hub {
    /// The cache folder (`…/hub`).
    pub cache: PathBuf,
    /// Never touch the network; read the cache only.
    pub offline: bool,
    /// The Hub's address (`HF_ENDPOINT`); `https://huggingface.co` when unset.
    pub endpoint: Option<String>,
    /// An access token (`HF_TOKEN`, else `$HF_HOME/token`).
    pub token: Option<String>,
}

impl Hub {
    /// A Hub that reads the cache folder `cache` (`…/hub`) and never the network.
    pub fn offline(cache: PathBuf) -> Self {
        Hub {
            cache,
            offline: true,
            endpoint: None,
            token: None,
        }
    }

    /// Reads `HF_HOME`, `HF_HUB_CACHE`, `HF_ENDPOINT`, `HF_TOKEN` and `HF_HUB_OFFLINE` as
    /// `huggingface_hub` does: the cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`; offline when `HF_HUB_OFFLINE` is `1`, `true`, `yes` or `on`;
    /// the token is `$HF_TOKEN`, else the content of `$HF_HOME/token`.
    pub fn from_env() -> Self {
        Hub::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Hub::from_env`] with the variables looked up by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let mut path = Cache::default().path().clone();
            path.pop(); // hf-hub's default is ~/.cache/huggingface/hub
            path
        });
        let cache = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("hub"));
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        let token = var("HF_TOKEN").or_else(|| {
            std::fs::read_to_string(home.join("token"))
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        Hub {
            cache,
            offline,
            endpoint: var("HF_ENDPOINT"),
            token,
        }
    }

    /// The local path of `file` in `repo`: from the cache when it is there, else downloaded
    /// into the cache (unless offline).
    pub fn file(&self, repo: &RepoRef, file: &str) -> Result<PathBuf> {
        if let Some(path) = self.cached(repo, file) {
            return Ok(path);
        }
        if self.offline {
            return Err(DataError::NotCached {
                kind: repo.kind.name(),
                repo: repo.id.clone(),
                revision: repo.revision.clone(),
                file: file.to_string(),
                cache: self.cache.clone(),
            });
        }
        self.download(repo, file)
    }

    /// The cached copy of `file`: the snapshot that `refs/<revision>` names, or the snapshot of
    /// that name when the revision is a commit hash.
    pub fn cached(&self, repo: &RepoRef, file: &str) -> Option<PathBuf> {
        let commit = self.commit_or_revision(repo);
        let path = self
            .cache
            .join(repo.folder())
            .join("snapshots")
            .join(commit)
            .join(file);
        path.is_file().then_some(path)
    }

    /// The commit `repo`'s revision stands for in the cache, once a file of it is there: the
    /// hash `refs/<revision>` records, or the revision itself when the cache holds a snapshot of
    /// that name (a commit hash). `None` when the cache knows neither.
    pub fn commit(&self, repo: &RepoRef) -> Option<String> {
        let commit = self.commit_or_revision(repo);
        let snapshot = self
            .cache
            .join(repo.folder())
            .join("snapshots")
            .join(&commit);
        snapshot.is_dir().then_some(commit)
    }

    fn commit_or_revision(&self, repo: &RepoRef) -> String {
        let refs = self
            .cache
            .join(repo.folder())
            .join("refs")
            .join(&repo.revision);
        std::fs::read_to_string(refs)
            .map(|c| c.trim().to_string())
            .unwrap_or_else(|_| repo.revision.clone())
    }

    fn download(&self, repo: &RepoRef, file: &str) -> Result<PathBuf> {
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| "https://huggingface.co".into());
        let failed = |message: String| DataError::Download {
            kind: repo.kind.name(),
            repo: repo.id.clone(),
            file: file.to_string(),
            endpoint: endpoint.clone(),
            message,
        };
        let api = ApiBuilder::from_cache(Cache::new(self.cache.clone()))
            .with_endpoint(endpoint.clone())
            .with_token(self.token.clone())
            .with_progress(true)
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let kind = match repo.kind {
            RepoKind::Dataset => RepoType::Dataset,
            RepoKind::Model => RepoType::Model,
        };
        api.repo(Repo::with_revision(
            repo.id.clone(),
            kind,
            repo.revision.clone(),
        ))
        .get(file)
        .map_err(|e| failed(e.to_string()))
    }
}
