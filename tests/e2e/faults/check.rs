//! The checker: reads every file back through a fresh client daemon and compares it with
//! the record, by the rules of [`codetta_testkit::dir_check`] for the workers' own
//! directories and those of concurrent writers for the shared files.

use crate::support::nfs::{Fh, Nfs};
use codetta_testkit::dir_check::{Found, Report, compare_dir};
use codetta_testkit::dir_model::{DirModel, State};
use codetta_testkit::shared_files::{SharedWrite, compare_shared};
use std::collections::BTreeMap;

async fn read_dir(nfs: &mut Nfs, dir: &Fh, report: &mut Report) -> BTreeMap<String, Found> {
    let mut out = BTreeMap::new();
    let names = match nfs.list(dir).await {
        Ok(n) => n,
        Err(e) => {
            report.failures.push(format!("listing a directory: {e:?}"));
            return out;
        }
    };
    for name in names {
        let read = async {
            let fh = nfs.lookup(dir, &name).await?;
            let attr = nfs.getattr(&fh).await?;
            let data = nfs.read_all(&fh).await?;
            Ok::<_, nfs3_client::nfs3_types::nfs3::nfsstat3>((attr, data))
        };
        match read.await {
            Ok((attr, data)) => {
                report.bytes += data.len() as u64;
                out.insert(
                    name,
                    Found {
                        fileid: attr.fileid,
                        state: State::of(&data, attr.mode & 0o7777),
                    },
                );
            }
            Err(e) => report.failures.push(format!("reading {name}: {e:?}")),
        }
    }
    out
}

/// Compares directory `label` (at `dir`) with `model`.
pub(crate) async fn check_dir(
    nfs: &mut Nfs,
    dir: &Fh,
    model: &DirModel,
    label: &str,
    report: &mut Report,
) {
    let found = read_dir(nfs, dir, report).await;
    compare_dir(&found, model, label, report);
}

/// Compares the shared files (`s0`, `s1`, ... in `dir`, first holding `initial`) with
/// every write made to them.
pub(crate) async fn check_shared(
    nfs: &mut Nfs,
    dir: &Fh,
    initial: &[[u8; 32]],
    writes: &[SharedWrite],
    report: &mut Report,
) {
    let found = read_dir(nfs, dir, report).await;
    compare_shared(&found, initial, writes, report);
}
