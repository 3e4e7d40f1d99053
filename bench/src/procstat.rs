//! What the kernel counts for each process of a system under test (CPU time, peak resident
//! memory, bytes sent to storage) and for the loopback interface (bytes carried).

use serde::Serialize;

/// One process of a system under test.
#[derive(Debug, Clone, Serialize)]
pub struct Watched {
    /// "client", "s1", "memfs", "bench" ...
    pub name: String,
    pub pid: u32,
    /// The server's index in its cluster, for a server process.
    #[serde(skip)]
    pub server: Option<usize>,
}

/// Counters of one process at one moment.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcCounters {
    /// User + system CPU seconds since the process started.
    pub cpu_secs: f64,
    /// Bytes the process caused to be written to storage (`write_bytes` minus
    /// `cancelled_write_bytes` of /proc/PID/io).
    pub disk_write_bytes: u64,
    /// Bytes passed to write system calls (`wchar`: files and pipes; sockets written with
    /// sendmsg are not counted).
    pub written_bytes: u64,
    /// Peak resident set (VmHWM), bytes.
    pub peak_rss_bytes: u64,
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim_start_matches(':').trim())
}

/// Reads the counters of `pid`; zeros for what cannot be read (a process that exited).
pub fn read(pid: u32) -> ProcCounters {
    let mut c = ProcCounters::default();
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The fields after the command name (in parentheses, which may hold spaces).
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        // utime and stime, in clock ticks (USER_HZ, 100 on Linux).
        c.cpu_secs = (ticks(11).unwrap_or(0.0) + ticks(12).unwrap_or(0.0)) / 100.0;
    }
    if let Ok(io) = std::fs::read_to_string(format!("/proc/{pid}/io")) {
        let n = |k| {
            field(&io, k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        c.disk_write_bytes = n("write_bytes").saturating_sub(n("cancelled_write_bytes"));
        c.written_bytes = n("wchar");
    }
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        c.peak_rss_bytes = field(&status, "VmHWM")
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024);
    }
    c
}

/// Bytes sent on the loopback interface so far (every packet between local processes is
/// counted once here).
pub fn loopback_tx_bytes() -> u64 {
    let Ok(dev) = std::fs::read_to_string("/proc/net/dev") else {
        return 0;
    };
    dev.lines()
        .find_map(|l| l.trim_start().strip_prefix("lo:"))
        .and_then(|v| v.split_whitespace().nth(8)?.parse().ok())
        .unwrap_or(0)
}

/// Counters of every watched process and of the loopback interface at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub procs: Vec<(String, ProcCounters)>,
    pub loopback_tx: u64,
}

impl Snapshot {
    pub fn take(watched: &[Watched]) -> Snapshot {
        Snapshot {
            procs: watched
                .iter()
                .map(|w| (w.name.clone(), read(w.pid)))
                .collect(),
            loopback_tx: loopback_tx_bytes(),
        }
    }
}

/// What each process did between two snapshots.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcDelta {
    pub name: String,
    pub cpu_secs: f64,
    pub disk_write_bytes: u64,
    pub written_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// The per-process differences between `before` and `after` (the peak RSS is `after`'s).
pub fn delta(before: &Snapshot, after: &Snapshot) -> Vec<ProcDelta> {
    after
        .procs
        .iter()
        .map(|(name, a)| {
            let b = before
                .procs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| *c)
                .unwrap_or_default();
            ProcDelta {
                name: name.clone(),
                cpu_secs: (a.cpu_secs - b.cpu_secs).max(0.0),
                disk_write_bytes: a.disk_write_bytes.saturating_sub(b.disk_write_bytes),
                written_bytes: a.written_bytes.saturating_sub(b.written_bytes),
                peak_rss_bytes: a.peak_rss_bytes,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn this_process_has_counters() {
        let c = read(std::process::id());
        assert!(c.peak_rss_bytes > 0);
        assert!(loopback_tx_bytes() < u64::MAX);
    }

    #[test]
    fn a_gone_process_reads_as_zeros() {
        let c = read(u32::MAX);
        assert_eq!(c.cpu_secs, 0.0);
        assert_eq!(c.peak_rss_bytes, 0);
    }
}
