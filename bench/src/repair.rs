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
    let (dir, name) = nfs.parent_of(path).await?;
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
