//! Workloads: sequential write and read (1 MiB requests), small files
//! (create + 4 KiB write + commit), through the NFS endpoint or on a local directory.

use crate::nfs::Nfs;
use nfs3_client::nfs3_types::nfs3::stable_how;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

const MIB: u64 = 1 << 20;

/// Pseudo-random bytes from `seed`: no two 64 KiB blocks alike, so content-addressed
/// deduplication does not flatter a figure.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn status(e: nfs3_client::nfs3_types::nfs3::nfsstat3) -> anyhow::Error {
    anyhow::anyhow!("NFS error {e}")
}

/// Writes `mib` MiB in 1 MiB UNSTABLE writes and one COMMIT; MiB/s.
pub async fn nfs_seq_write(nfs: &mut Nfs, name: &str, mib: u64) -> anyhow::Result<f64> {
    let root = nfs.root.clone();
    let f = nfs.create(&root, name).await.map_err(status)?;
    let start = Instant::now();
    for i in 0..mib {
        let data = payload(i, MIB as usize);
        nfs.write(&f, i * MIB, &data, stable_how::UNSTABLE)
            .await
            .map_err(status)?;
    }
    nfs.commit(&f).await.map_err(status)?;
    Ok(mib as f64 / start.elapsed().as_secs_f64())
}

/// Reads the file back in 1 MiB requests; MiB/s.
pub async fn nfs_seq_read(nfs: &mut Nfs, name: &str) -> anyhow::Result<f64> {
    let root = nfs.root.clone();
    let f = nfs.lookup(&root, name).await.map_err(status)?;
    let start = Instant::now();
    let bytes = nfs.read_each(&f, |_| {}).await.map_err(status)?;
    Ok(bytes as f64 / MIB as f64 / start.elapsed().as_secs_f64())
}

/// Creates `n` files of 4 KiB (CREATE, WRITE UNSTABLE, COMMIT, as a kernel client does for
/// create+write+close); files/s.
pub async fn nfs_small_files(nfs: &mut Nfs, dir: &str, n: u64) -> anyhow::Result<f64> {
    let root = nfs.root.clone();
    let d = nfs.mkdir(&root, dir).await.map_err(status)?;
    let data = payload(7, 4096);
    let start = Instant::now();
    for i in 0..n {
        let f = nfs.create(&d, &format!("f{i}")).await.map_err(status)?;
        nfs.write(&f, 0, &data, stable_how::UNSTABLE)
            .await
            .map_err(status)?;
        nfs.commit(&f).await.map_err(status)?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The same three workloads on a local directory (fsync at the end of the big file and of
/// every small file, matching COMMIT).
pub fn local_disk(dir: &Path, mib: u64, files: u64) -> anyhow::Result<(f64, f64, f64)> {
    let path = dir.join("seq");
    let start = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    for i in 0..mib {
        f.write_all(&payload(i, MIB as usize))?;
    }
    f.sync_all()?;
    let write = mib as f64 / start.elapsed().as_secs_f64();
    drop(f);
    let start = Instant::now();
    let mut f = std::fs::File::open(&path)?;
    let mut buf = vec![0u8; MIB as usize];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let read = total as f64 / MIB as f64 / start.elapsed().as_secs_f64();
    let small = dir.join("small");
    std::fs::create_dir_all(&small)?;
    let data = payload(7, 4096);
    let start = Instant::now();
    for i in 0..files {
        let mut f = std::fs::File::create(small.join(format!("f{i}")))?;
        f.write_all(&data)?;
        f.sync_all()?;
    }
    let creates = files as f64 / start.elapsed().as_secs_f64();
    Ok((write, read, creates))
}
