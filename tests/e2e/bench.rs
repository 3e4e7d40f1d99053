//! The bench harness end to end, with tiny sizes: every workload on the NFS layer alone and
//! on 1- and 3-replica clusters (processes), twice (median and spread), the resync figure
//! and the steady write on the 3-replica cluster, and its outputs.

use crate::support::codetta_binary;
use codetta_bench::systems::SystemSpec;
use codetta_bench::workloads::{Kind, Shape, Sizes};
use codetta_bench::{Options, Profile};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_measures_every_workload_on_every_system_and_writes_its_outputs() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        profile: Profile {
            name: "test",
            sizes: Sizes {
                seq_mib: 4,
                rand_ops: 50,
                small_files: 10,
                tree_dirs: 2,
                tree_files_per_dir: 4,
            },
            repeats: 2,
            small_streams: vec![1, 2],
            steady_secs: 3,
            resync_mib: 4,
        },
        systems: vec![
            SystemSpec::LocalDisk,
            SystemSpec::NfsLayer,
            SystemSpec::Codetta { replicas: 3 },
        ],
        shape: Shape {
            streams: 1,
            queue_depth: 2,
        },
        kinds: Kind::ALL.to_vec(),
        scratch: scratch.path().to_path_buf(),
        binary: codetta_binary().to_path_buf(),
    };
    let report = codetta_bench::harness::run(&opts).await.expect("bench run");
    // 13 phases, the 5 small-file ones twice (1 and 2 streams): 18 per system and repeat.
    for system in ["local disk", "NFS layer alone", "codetta 3 replicas"] {
        let n = report
            .records
            .iter()
            .filter(|r| r.system == system && r.phase.is_some())
            .count();
        assert_eq!(n, 36, "{system}");
    }
    for r in report.records.iter().filter(|r| r.phase.is_some()) {
        assert!(r.value > 0.0, "{} on {}: {}", r.workload, r.system, r.value);
    }
    let cluster = |w: &str| {
        report
            .records
            .iter()
            .find(|r| r.system == "codetta 3 replicas" && r.workload.starts_with(w))
            .unwrap_or_else(|| panic!("no {w} record"))
    };
    // Three replicas: every byte crosses the network at least three times and is stored
    // three times.
    let write = cluster("seq write");
    assert!(write.net_bytes_per_byte.expect("net") >= 2.9, "{write:?}");
    assert!(write.disk_bytes_per_byte.expect("disk") >= 2.9, "{write:?}");
    assert!(
        write
            .procs
            .iter()
            .any(|p| p.name == "s3" && p.cpu_secs > 0.0)
    );
    let resync = cluster("resync");
    let extra = |k: &str| resync.extra.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    // Shipped by resolution: at most about what changed (a returning server may also get
    // what it missed from the client's log, when the records are still there).
    assert!(
        extra("shipped_mib").is_some_and(|m| (0.0..=8.0).contains(&m)),
        "{resync:?}"
    );
    assert!(resync.value > 0.0, "{resync:?}");
    assert!(
        cluster("steady write")
            .extra
            .iter()
            .any(|(k, _)| k == "second_0")
    );
    let json = scratch.path().join("b.json");
    let svg = scratch.path().join("b.svg");
    codetta_bench::harness::write_outputs(&report, &json, &svg).expect("outputs");
    let raw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("valid JSON");
    assert_eq!(
        raw["records"].as_array().map(Vec::len),
        Some(report.records.len())
    );
    let chart = std::fs::read_to_string(&svg).expect("svg");
    assert!(chart.contains("codetta 3 replicas") && chart.contains("tree delete"));
}
