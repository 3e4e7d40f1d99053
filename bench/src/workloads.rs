//! Workloads: what a run does to a system under test, in phases that each measure one
//! kind of operation. A phase runs `streams` streams of `queue_depth` lanes each; every
//! lane is a thread with its own connection (one request in flight per lane), and the
//! lanes of a stream share its work (lane j takes requests j, j + Q, j + 2Q, ...).

use crate::data::Pattern;
use crate::files::{Access, Files, Local};
use crate::nfs::Nfs;
use serde::Serialize;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

pub use crate::data::payload;

pub const MIB: u64 = 1 << 20;
const SMALL: usize = 4096;

/// The kinds of phase, in the order a run performs them (later ones use what earlier ones
/// left: the reads read the sequential files, stat/readdir/unlink the small files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// 1 MiB UNSTABLE writes into one new file per stream, one COMMIT at the end.
    SeqWrite,
    /// 1 MiB reads of those files.
    SeqRead,
    /// The same reads again (a client cache answers them).
    SeqReread,
    /// 4 KiB writes at random aligned offsets of those files, one COMMIT at the end.
    RandWrite,
    /// 4 KiB reads at random aligned offsets.
    RandRead,
    /// CREATE + 4 KiB WRITE + COMMIT per file (what create, write, close costs).
    Create,
    /// LOOKUP + GETATTR of each of those files.
    Stat,
    /// The same again (a client cache answers them).
    StatAgain,
    /// READDIRPLUS of each stream's directory, 3-100 times (about 10,000 entries).
    Readdir,
    /// REMOVE of each of those files.
    Unlink,
    /// A tree (directories of files of 1-16 KiB) copied in: MKDIR, then CREATE + WRITE +
    /// COMMIT per file.
    TreeCopy,
    /// Every directory of the tree listed (READDIRPLUS).
    TreeList,
    /// The tree removed, directory by directory.
    TreeDelete,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::SeqWrite,
        Kind::SeqRead,
        Kind::SeqReread,
        Kind::RandWrite,
        Kind::RandRead,
        Kind::Create,
        Kind::Stat,
        Kind::StatAgain,
        Kind::Readdir,
        Kind::Unlink,
        Kind::TreeCopy,
        Kind::TreeList,
        Kind::TreeDelete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::SeqWrite => "seq write 1 MiB",
            Kind::SeqRead => "seq read 1 MiB",
            Kind::SeqReread => "seq read again",
            Kind::RandWrite => "random write 4 KiB",
            Kind::RandRead => "random read 4 KiB",
            Kind::Create => "create+4 KiB+commit",
            Kind::Stat => "stat",
            Kind::StatAgain => "stat again",
            Kind::Readdir => "readdir entries",
            Kind::Unlink => "unlink",
            Kind::TreeCopy => "tree copy in",
            Kind::TreeList => "tree list",
            Kind::TreeDelete => "tree delete",
        }
    }

    /// The name `--workloads` takes.
    pub fn arg(self) -> &'static str {
        match self {
            Kind::SeqWrite => "seq-write",
            Kind::SeqRead => "seq-read",
            Kind::SeqReread => "seq-reread",
            Kind::RandWrite => "random-write",
            Kind::RandRead => "random-read",
            Kind::Create => "create",
            Kind::Stat => "stat",
            Kind::StatAgain => "stat-again",
            Kind::Readdir => "readdir",
            Kind::Unlink => "unlink",
            Kind::TreeCopy => "tree-copy",
            Kind::TreeList => "tree-list",
            Kind::TreeDelete => "tree-delete",
        }
    }

    /// Whether the figure is bytes per second (else operations per second).
    pub fn measures_bytes(self) -> bool {
        matches!(self, Kind::SeqWrite | Kind::SeqRead | Kind::SeqReread)
    }

    /// The phase whose files this one works on, if any (reads need the sequential file,
    /// stat, readdir and unlink the small files, listing and deleting the tree).
    pub fn needs(self) -> Option<Kind> {
        match self {
            Kind::SeqRead | Kind::SeqReread | Kind::RandWrite | Kind::RandRead => {
                Some(Kind::SeqWrite)
            }
            Kind::Stat | Kind::StatAgain | Kind::Readdir | Kind::Unlink => Some(Kind::Create),
            Kind::TreeList | Kind::TreeDelete => Some(Kind::TreeCopy),
            Kind::SeqWrite | Kind::Create | Kind::TreeCopy => None,
        }
    }

    /// `listed` with the phases they need added, in the order the phases run.
    pub fn with_needs(listed: &[Kind]) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| listed.iter().any(|l| l == k || l.needs() == Some(*k)))
            .collect()
    }

    /// Whether the phase writes file data (network and disk bytes per byte written).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Kind::SeqWrite | Kind::RandWrite | Kind::Create | Kind::TreeCopy
        )
    }
}

/// How much each phase does, per stream.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    pub seq_mib: u64,
    pub rand_ops: u64,
    pub small_files: u64,
    pub tree_dirs: u64,
    pub tree_files_per_dir: u64,
}

/// Streams and requests in flight per stream.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shape {
    pub streams: usize,
    pub queue_depth: usize,
}

/// Latency percentiles of a phase's operations, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_us: u32,
    pub p90_us: u32,
    pub p99_us: u32,
    pub max_us: u32,
}

impl Latency {
    pub fn of(mut samples: Vec<u32>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Latency {
            p50_us: at(0.5),
            p90_us: at(0.9),
            p99_us: at(0.99),
            max_us: at(1.0),
        }
    }
}

/// What one phase did.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub ops: u64,
    /// File bytes written or read.
    pub bytes: u64,
    pub secs: f64,
    pub latency: Latency,
    /// Bytes the bench's NFS connections carried both ways.
    pub nfs_traffic: u64,
}

impl PhaseResult {
    /// Operations (or MiB, for byte workloads) per second.
    pub fn rate(&self, kind: Kind) -> f64 {
        let work = if kind.measures_bytes() {
            self.bytes as f64 / MIB as f64
        } else {
            self.ops as f64
        };
        work / self.secs.max(1e-9)
    }
}

/// Counters the progress line reads while a phase runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub ops: AtomicU64,
    pub bytes: AtomicU64,
}

/// Where a stream's objects live, under the run's directory `base`.
fn seq_name(stream: usize) -> String {
    format!("seq-{stream}")
}

fn small_dir(streams: usize, stream: usize) -> String {
    format!("small-{streams}x-{stream}")
}

fn tree_dir(stream: usize) -> String {
    format!("tree-{stream}")
}

/// A deterministic pseudo-random number for (a, b).
fn mix(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_add(0x632b_e59b_d9b4_e019);
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 29)
}

/// A number for the data of piece `n` of stream `stream` in phase `kind` of the run
/// directory `base`, different in every process (so no run writes what an earlier one left
/// on a server, and random writes never rewrite the bytes already there).
fn data_id(base: &str, kind: Kind, stream: u64, n: u64) -> u64 {
    static NONCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let nonce = *NONCE.get_or_init(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        mix(t, u64::from(std::process::id()))
    });
    let h = base
        .bytes()
        .fold(nonce ^ kind as u64, |h, b| mix(h, u64::from(b)));
    mix(mix(h, stream), n)
}

/// The size of file `i` of a tree: 1-16 KiB.
fn tree_file_size(dir: u64, i: u64) -> usize {
    1024 * (1 + (mix(dir, i) % 16) as usize)
}

struct Lane {
    kind: Kind,
    base: String,
    stream: usize,
    lane: usize,
    shape: Shape,
    sizes: Sizes,
    start: Arc<Barrier>,
    stream_done: Arc<Barrier>,
    progress: Arc<Progress>,
    /// Whether this lane has passed `start` / `stream_done` (a lane that fails still
    /// passes them, so that the others do not wait for it forever).
    passed_start: Cell<bool>,
    passed_done: Cell<bool>,
}

struct LaneOut {
    ops: u64,
    bytes: u64,
    began: Instant,
    ended: Instant,
    latencies: Vec<u32>,
    traffic: u64,
}

/// The indices lane `lane` of `q` takes out of `0..n`.
fn share(n: u64, lane: usize, q: usize) -> impl Iterator<Item = u64> {
    (lane as u64..n).step_by(q.max(1))
}

impl Lane {
    fn record(&self, out: &mut LaneOut, t: Instant, bytes: u64) {
        out.latencies
            .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
        out.ops += 1;
        out.bytes += bytes;
        self.progress.ops.fetch_add(1, Ordering::Relaxed);
        self.progress.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Blocks until every lane is ready; the phase's clock starts here.
    fn begin(&self) -> Instant {
        self.passed_start.set(true);
        self.start.wait();
        Instant::now()
    }

    /// Blocks until every lane of this stream has written its share.
    fn stream_written(&self) {
        self.passed_done.set(true);
        self.stream_done.wait();
    }

    fn writes_data(&self) -> bool {
        matches!(self.kind, Kind::SeqWrite | Kind::RandWrite)
    }

    async fn run<F: Files>(self, fs: F) -> anyhow::Result<LaneOut> {
        self.body(fs).await
    }

    async fn body<F: Files>(&self, mut fs: F) -> anyhow::Result<LaneOut> {
        let pattern = Pattern::default();
        let root = fs.root();
        let base = fs.lookup_dir(&root, &self.base).await?;
        let (q, s) = (self.shape.queue_depth, self.stream as u64);
        // Data no earlier phase, repeat or run wrote: a server that deduplicates or skips
        // unchanged blocks must still store every byte.
        let data_for = |n: u64| data_id(&self.base, self.kind, s, n);
        let mut out = LaneOut {
            ops: 0,
            bytes: 0,
            began: Instant::now(),
            ended: Instant::now(),
            latencies: Vec::new(),
            traffic: 0,
        };
        match self.kind {
            Kind::SeqWrite | Kind::SeqRead | Kind::SeqReread | Kind::RandWrite | Kind::RandRead => {
                let file = fs.open(&base, &seq_name(self.stream)).await?;
                let mut buf = Vec::new();
                let (ops, size) = match self.kind {
                    Kind::SeqWrite | Kind::SeqRead | Kind::SeqReread => {
                        (self.sizes.seq_mib, MIB as usize)
                    }
                    _ => (self.sizes.rand_ops, SMALL),
                };
                let blocks = self.sizes.seq_mib * (MIB / SMALL as u64);
                out.began = self.begin();
                for i in share(ops, self.lane, q) {
                    let offset = match self.kind {
                        Kind::SeqWrite | Kind::SeqRead | Kind::SeqReread => i * MIB,
                        _ => (mix(s, i) % blocks.max(1)) * SMALL as u64,
                    };
                    let t = Instant::now();
                    let moved = if matches!(self.kind, Kind::SeqWrite | Kind::RandWrite) {
                        buf.resize(size, 0);
                        pattern.fill(&mut buf, data_for(i), offset);
                        fs.write(&file, offset, &buf).await?;
                        size
                    } else {
                        fs.read(&file, offset, &mut buf, size).await?
                    };
                    self.record(&mut out, t, moved as u64);
                    // What the sequential reads return must be what the sequential write
                    // wrote there (checked by the stamps: cheap enough not to weigh).
                    if matches!(self.kind, Kind::SeqRead | Kind::SeqReread) {
                        let written = data_id(&self.base, Kind::SeqWrite, s, i);
                        anyhow::ensure!(
                            moved > 0 && pattern.stamped(&buf[..moved], written, offset),
                            "{}: stream {s} read wrong data at offset {offset} ({moved} bytes)",
                            self.kind.name()
                        );
                    }
                }
                if self.writes_data() {
                    self.stream_written();
                    if self.lane == 0 {
                        fs.commit(&file).await?;
                    }
                }
            }
            Kind::Create | Kind::Stat | Kind::StatAgain | Kind::Readdir | Kind::Unlink => {
                let dir = fs
                    .lookup_dir(&base, &small_dir(self.shape.streams, self.stream))
                    .await?;
                let data = pattern.bytes(data_for(0), 0, SMALL);
                out.began = self.begin();
                if self.kind == Kind::Readdir {
                    // Enough passes for about 10,000 entries.
                    let passes = (10_000 / self.sizes.small_files.max(1)).clamp(3, 100);
                    for _ in 0..passes {
                        let t = Instant::now();
                        let n = fs.list(&dir).await?.len() as u64;
                        out.latencies
                            .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                        out.ops += n;
                        self.progress.ops.fetch_add(n, Ordering::Relaxed);
                    }
                }
                for i in share(self.sizes.small_files, self.lane, q) {
                    let name = format!("f{i}");
                    let t = Instant::now();
                    match self.kind {
                        Kind::Create => {
                            let f = fs.create(&dir, &name).await?;
                            fs.write(&f, 0, &data).await?;
                            fs.commit(&f).await?;
                        }
                        Kind::Stat | Kind::StatAgain => fs.stat(&dir, &name).await?,
                        Kind::Unlink => fs.remove(&dir, &name).await?,
                        _ => break,
                    }
                    let bytes = if self.kind == Kind::Create { SMALL } else { 0 };
                    self.record(&mut out, t, bytes as u64);
                }
            }
            Kind::TreeCopy | Kind::TreeList | Kind::TreeDelete => {
                let tree = fs.lookup_dir(&base, &tree_dir(self.stream)).await?;
                let mut buf = Vec::new();
                out.began = self.begin();
                for d in share(self.sizes.tree_dirs, self.lane, q) {
                    let dname = format!("d{d}");
                    match self.kind {
                        Kind::TreeCopy => {
                            let dir = fs.mkdir(&tree, &dname).await?;
                            for i in 0..self.sizes.tree_files_per_dir {
                                let t = Instant::now();
                                let size = tree_file_size(d, i);
                                buf.resize(size, 0);
                                pattern.fill(&mut buf, data_for(d << 32 | i), 0);
                                let f = fs.create(&dir, &format!("f{i}")).await?;
                                fs.write(&f, 0, &buf).await?;
                                fs.commit(&f).await?;
                                self.record(&mut out, t, size as u64);
                            }
                        }
                        Kind::TreeList => {
                            let t = Instant::now();
                            let dir = fs.lookup_dir(&tree, &dname).await?;
                            let n = fs.list(&dir).await?.len() as u64;
                            self.record(&mut out, t, 0);
                            out.ops += n.saturating_sub(1);
                        }
                        _ => {
                            let dir = fs.lookup_dir(&tree, &dname).await?;
                            for name in fs.list(&dir).await? {
                                let t = Instant::now();
                                fs.remove(&dir, &name).await?;
                                self.record(&mut out, t, 0);
                            }
                            let t = Instant::now();
                            fs.rmdir(&tree, &dname).await?;
                            self.record(&mut out, t, 0);
                        }
                    }
                }
            }
        }
        out.ended = Instant::now();
        out.traffic = fs.traffic();
        Ok(out)
    }
}

impl Drop for Lane {
    /// A lane that failed (or could not connect, or panicked) still passes the barriers it
    /// had not reached, so the other lanes do not wait for it forever.
    fn drop(&mut self) {
        if !self.passed_start.get() {
            self.start.wait();
        }
        if self.writes_data() && !self.passed_done.get() {
            self.stream_done.wait();
        }
    }
}

/// Runs `lane` with a client of `access` on the current (lane) thread's runtime.
async fn run_lane(access: Access, lane: Lane) -> anyhow::Result<LaneOut> {
    match access {
        Access::Nfs(addr) => lane.run(Nfs::connect_to(addr, 0, 0).await?).await,
        Access::Path(path) => lane.run(Local::new(path)).await,
    }
}

/// Creates what a phase needs before its clock starts (the run directory, each stream's
/// file or directory) with a client of its own.
async fn prepare<F: Files>(
    fs: &mut F,
    kind: Kind,
    base: &str,
    sizes: &Sizes,
    shape: Shape,
) -> anyhow::Result<()> {
    let root = fs.root();
    let base = match fs.lookup_dir(&root, base).await {
        Ok(dir) if fs.list(&dir).await.is_ok() => dir,
        _ => fs.mkdir(&root, base).await?,
    };
    for s in 0..shape.streams {
        match kind {
            Kind::SeqWrite => {
                let f = fs.create(&base, &seq_name(s)).await?;
                // Lanes write out of order; nfs3_server's in-memory file system refuses a
                // write past the end of a file, so the file is sized first.
                if shape.queue_depth > 1 {
                    fs.set_len(&f, sizes.seq_mib * MIB).await?;
                }
            }
            Kind::Create => ensure_dir(fs, &base, &small_dir(shape.streams, s)).await?,
            Kind::TreeCopy => ensure_dir(fs, &base, &tree_dir(s)).await?,
            _ => {}
        }
    }
    Ok(())
}

/// Makes directory `name` unless it is there (left by an earlier, interrupted run).
async fn ensure_dir<F: Files>(fs: &mut F, dir: &F::Dir, name: &str) -> anyhow::Result<()> {
    if let Ok(existing) = fs.lookup_dir(dir, name).await
        && fs.list(&existing).await.is_ok()
    {
        return Ok(());
    }
    fs.mkdir(dir, name).await.map(|_| ())
}

/// Removes what phases leave behind once a run is over: the sequential files, the
/// emptied directories.
pub async fn clean_up(access: &Access, base: &str, shape: Shape) -> anyhow::Result<()> {
    async fn clean<F: Files>(mut fs: F, base: &str, shape: Shape) -> anyhow::Result<()> {
        let root = fs.root();
        let dir = fs.lookup_dir(&root, base).await?;
        for s in 0..shape.streams {
            let _ = fs.remove(&dir, &seq_name(s)).await;
            let _ = fs.rmdir(&dir, &tree_dir(s)).await;
        }
        for name in fs.list(&dir).await? {
            if name.starts_with("small-") {
                let _ = fs.rmdir(&dir, &name).await;
            }
        }
        let _ = fs.rmdir(&root, base).await;
        Ok(())
    }
    match access {
        Access::Nfs(addr) => clean(Nfs::connect_to(*addr, 0, 0).await?, base, shape).await,
        Access::Path(path) => clean(Local::new(path.clone()), base, shape).await,
    }
}

/// Runs one phase of `kind` on `access` in the run directory `base`.
pub async fn run_phase(
    access: &Access,
    kind: Kind,
    base: &str,
    sizes: &Sizes,
    shape: Shape,
    progress: Arc<Progress>,
) -> anyhow::Result<PhaseResult> {
    match access {
        Access::Nfs(addr) => {
            prepare(
                &mut Nfs::connect_to(*addr, 0, 0).await?,
                kind,
                base,
                sizes,
                shape,
            )
            .await?
        }
        Access::Path(path) => {
            prepare(&mut Local::new(path.clone()), kind, base, sizes, shape).await?
        }
    }
    let lanes = shape.streams * shape.queue_depth;
    let start = Arc::new(Barrier::new(lanes));
    let mut threads = Vec::with_capacity(lanes);
    for stream in 0..shape.streams {
        let stream_done = Arc::new(Barrier::new(shape.queue_depth));
        for lane in 0..shape.queue_depth {
            let lane = Lane {
                kind,
                base: base.to_string(),
                stream,
                lane,
                shape,
                sizes: sizes.clone(),
                start: start.clone(),
                stream_done: stream_done.clone(),
                progress: progress.clone(),
                passed_start: Cell::new(false),
                passed_done: Cell::new(false),
            };
            let access = access.clone();
            threads.push(std::thread::spawn(move || -> anyhow::Result<LaneOut> {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(run_lane(access, lane))
            }));
        }
    }
    let outs = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| anyhow::anyhow!("a bench lane panicked"))?
            })
            .collect::<anyhow::Result<Vec<LaneOut>>>()
    })
    .await??;
    let began = outs
        .iter()
        .map(|o| o.began)
        .min()
        .unwrap_or_else(Instant::now);
    let ended = outs.iter().map(|o| o.ended).max().unwrap_or(began);
    Ok(PhaseResult {
        ops: outs.iter().map(|o| o.ops).sum(),
        bytes: outs.iter().map(|o| o.bytes).sum(),
        secs: ended.duration_since(began).as_secs_f64(),
        latency: Latency::of(
            outs.iter()
                .flat_map(|o| o.latencies.iter().copied())
                .collect(),
        ),
        nfs_traffic: outs.iter().map(|o| o.traffic).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::Kind;

    #[test]
    fn a_listed_phase_brings_the_phase_whose_files_it_uses() {
        assert_eq!(Kind::with_needs(&[Kind::Stat]), [Kind::Create, Kind::Stat]);
        assert_eq!(
            Kind::with_needs(&[Kind::TreeDelete, Kind::RandRead, Kind::Unlink]),
            [
                Kind::SeqWrite,
                Kind::RandRead,
                Kind::Create,
                Kind::Unlink,
                Kind::TreeCopy,
                Kind::TreeDelete
            ]
        );
        assert_eq!(Kind::with_needs(&Kind::ALL), Kind::ALL);
        for k in Kind::ALL {
            if let Some(n) = k.needs() {
                assert_eq!(n.needs(), None, "{k:?}: one level of needs");
            }
        }
    }
}
