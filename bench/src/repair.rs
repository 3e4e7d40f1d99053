//! Settling a conflict (`codetta repair`) through an NFSv3 endpoint, as any client would:
//! the chosen version is renamed to the object's name and the other versions beside it
//! are removed, all through the client daemon's ordinary update path (logged, replicated).

use crate::nfs::{Fh, Nfs};
use anyhow::Context;

/// What `repair` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repaired {
    /// The version now under the name (its former name).
    pub kept: String,
    /// Versions removed.
    pub removed: Vec<String>,
}

/// The directory holding `path` ("/a/b/name") and the name.
async fn parent_of(nfs: &mut Nfs, path: &str) -> anyhow::Result<(Fh, String)> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let Some((name, dirs)) = parts.split_last() else {
        anyhow::bail!("{path:?} names no file");
    };
    let mut dir = nfs.root.clone();
    for d in dirs {
        dir = nfs
            .lookup(&dir, d)
            .await
            .map_err(|e| anyhow::anyhow!("looking up {d:?} in {path}: {e:?}"))?;
    }
    Ok((dir, (*name).to_string()))
}

/// The versions of `name` in `dir`: the names `name.conflict-*` beside it.
async fn conflict_names(nfs: &mut Nfs, dir: &Fh, name: &str) -> anyhow::Result<Vec<String>> {
    let prefix = format!("{name}.conflict-");
    let names = nfs
        .list(dir)
        .await
        .map_err(|e| anyhow::anyhow!("listing the directory: {e:?}"))?;
    Ok(names
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect())
}

/// Settles the conflict on `path` (the object's name, without a conflict suffix):
/// `keep` is `current` (what is under the name now stays, the conflict versions go) or the
/// suffix of one version (`conflict-1a2b3c4d`, or its whole name), which replaces what is
/// under the name while the other versions go. Versions are listed by `codetta conflicts`.
pub async fn repair(nfs: &mut Nfs, path: &str, keep: &str) -> anyhow::Result<Repaired> {
    let (dir, name) = parent_of(nfs, path).await?;
    let versions = conflict_names(nfs, &dir, &name).await?;
    anyhow::ensure!(
        !versions.is_empty(),
        "{path} has no conflict versions beside it (names {name}.conflict-*)"
    );
    let chosen = if keep == "current" {
        None
    } else {
        let wanted = keep.strip_prefix(&format!("{name}.")).unwrap_or(keep);
        let full = format!("{name}.{wanted}");
        Some(
            versions
                .iter()
                .find(|v| **v == full)
                .cloned()
                .with_context(|| {
                    format!("no version {full} (there are: {})", versions.join(", "))
                })?,
        )
    };
    let mut done = Repaired {
        kept: chosen.clone().unwrap_or_else(|| name.clone()),
        removed: Vec::new(),
    };
    if let Some(chosen) = &chosen {
        nfs.rename(&dir, chosen, &dir, &name)
            .await
            .map_err(|e| anyhow::anyhow!("moving {chosen} to {name}: {e:?}"))?;
    }
    for v in versions.iter().filter(|v| Some(*v) != chosen.as_ref()) {
        match nfs.remove(&dir, v).await {
            Ok(()) => done.removed.push(v.clone()),
            Err(e) => anyhow::bail!("removing {v}: {e:?}"),
        }
    }
    Ok(done)
}
