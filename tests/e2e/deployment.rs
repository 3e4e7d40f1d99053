//! The README's deployment walkthrough, run on one machine: three servers on 127.0.0.2-4
//! (each as `codetta server --config`, the unit's ExecStart), certificates issued with
//! `codetta certs`, the catalogue formed, the root volume created, a client daemon pointed
//! at one server only; then a fourth server on 127.0.0.5 joins (`cluster add-server`) and
//! takes a replica (`volume add-replica`) that alone serves the files once the first three
//! are gone; a lost client's certificate is revoked (`cluster revoke`) and refused.

use crate::support::codetta_binary;
use crate::support::nfs::Nfs;
use codetta_cluster::Proc;
use nfs3_client::nfs3_types::nfs3::stable_how;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::run_codetta as codetta;

/// Like [`codetta`], retried while it fails (a cluster settling), for up to `limit`.
async fn codetta_until(args: &[&str], limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let out = Command::new(codetta_binary())
            .args(args)
            .output()
            .expect("run codetta");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && done(&text) {
            return text;
        }
        assert!(
            started.elapsed() < limit,
            "codetta {args:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn server_toml(dir: &Path, name: &str, addr: &str, peers: &[(&str, String)], join: bool) -> String {
    let etc = dir.join("etc");
    let mut text = format!(
        "name = \"{name}\"\nlisten = \"{addr}\"\ndata_dir = {:?}\nca = {:?}\ncert = {:?}\nkey = {:?}\njoin = {join}\n",
        dir.join("var").join(name).display().to_string(),
        etc.join("ca.pem").display().to_string(),
        etc.join(format!("{name}.pem")).display().to_string(),
        etc.join(format!("{name}.key")).display().to_string(),
    );
    for (peer, peer_addr) in peers {
        text += &format!("\n[[peers]]\nname = \"{peer}\"\naddr = \"{peer_addr}\"\n");
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_on_127_0_0_2_to_5() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let etc = dir.join("etc");
    let ca = dir.join("ca");
    let s = |p: &Path| p.display().to_string();
    let port = codetta_cluster::free_port().expect("port");
    let addr = |i: usize| format!("127.0.0.{}:{port}", i + 2);
    let names = ["s1", "s2", "s3", "s4"];

    // 1-2. The CA, then a certificate per node (server, client, admin).
    codetta(&["certs", "init", "--dir", &s(&ca)]);
    std::fs::create_dir_all(&etc).expect("etc");
    std::fs::copy(ca.join("ca.pem"), etc.join("ca.pem")).expect("ca.pem");
    for name in names {
        codetta(&[
            "certs",
            "issue",
            "--dir",
            &s(&ca),
            "--role",
            "server",
            "--name",
            name,
            "--out",
            &s(&etc),
        ]);
    }
    codetta(&[
        "certs",
        "issue",
        "--dir",
        &s(&ca),
        "--role",
        "client",
        "--name",
        "c1",
        "--out",
        &s(&etc),
    ]);
    codetta(&[
        "certs",
        "issue",
        "--dir",
        &s(&ca),
        "--role",
        "admin",
        "--name",
        "admin",
        "--out",
        &s(&etc),
    ]);

    // 3-4. Each server's configuration lists the others; start them.
    let mut servers = Vec::new();
    for (i, name) in names[..3].iter().enumerate() {
        let peers: Vec<(&str, String)> = (0..3)
            .filter(|j| *j != i)
            .map(|j| (names[j], addr(j)))
            .collect();
        let path = etc.join(format!("{name}.toml"));
        std::fs::write(&path, server_toml(dir, name, &addr(i), &peers, false)).expect("toml");
        servers.push(
            Proc::spawn(
                codetta_binary(),
                &["server", "--config", &s(&path)],
                &dir.join(format!("{name}.log")),
            )
            .expect("server"),
        );
    }
    let admin = etc.join("admin.toml");
    std::fs::write(
        &admin,
        format!(
            "ca = {:?}\ncert = {:?}\nkey = {:?}\nserver_name = \"s1\"\nserver_addr = \"{}\"\n",
            s(&etc.join("ca.pem")),
            s(&etc.join("admin.pem")),
            s(&etc.join("admin.key")),
            addr(0)
        ),
    )
    .expect("admin.toml");
    let admin = s(&admin);
    let listed = codetta_until(
        &["cluster", "list", "--admin", &admin],
        Duration::from_secs(60),
        |t| t.matches("voter").count() == 3 && !t.contains("not voting"),
    )
    .await;
    eprintln!("{listed}");

    // 5. The root volume on all three.
    codetta(&[
        "volume",
        "create",
        "root",
        "--replicas",
        "s1,s2,s3",
        "--admin",
        &admin,
    ]);

    // 6. A client pointed at s1 only: it learns the others from the catalogue. (It takes
    // unprivileged source ports: the test's NFS client is an ordinary process.)
    let nfs_port = codetta_cluster::free_port().expect("port");
    let client_toml = etc.join("client.toml");
    std::fs::write(
        &client_toml,
        format!(
            "name = \"c1\"\ndata_dir = {:?}\nnfs_listen = \"127.0.0.1:{nfs_port}\"\nrequire_privileged_port = false\nca = {:?}\ncert = {:?}\nkey = {:?}\n\n[[servers]]\nname = \"s1\"\naddr = \"{}\"\n",
            s(&dir.join("var").join("client")),
            s(&etc.join("ca.pem")),
            s(&etc.join("c1.pem")),
            s(&etc.join("c1.key")),
            addr(0)
        ),
    )
    .expect("client.toml");
    let _client = Proc::spawn(
        codetta_binary(),
        &["client", "--config", &s(&client_toml)],
        &dir.join("client.log"),
    )
    .expect("client");
    crate::support::wait_for_tcp(nfs_port).await;
    let mut nfs = Nfs::connect(nfs_port).await.expect("mount");
    let root = nfs.root.clone();
    let f = nfs.create(&root, "hello.txt").await.expect("create");
    nfs.write(&f, 0, b"deployed", stable_how::FILE_SYNC)
        .await
        .expect("write");

    // Adding a server: certificate (issued above), `join = true`, the others as peers.
    let peers: Vec<(&str, String)> = (0..3).map(|j| (names[j], addr(j))).collect();
    let s4_toml = etc.join("s4.toml");
    std::fs::write(&s4_toml, server_toml(dir, "s4", &addr(3), &peers, true)).expect("toml");
    servers.push(
        Proc::spawn(
            codetta_binary(),
            &["server", "--config", &s(&s4_toml)],
            &dir.join("s4.log"),
        )
        .expect("s4"),
    );
    codetta_until(
        &["cluster", "add-server", "s4", &addr(3), "--admin", &admin],
        Duration::from_secs(60),
        |_| true,
    )
    .await;
    let listed = codetta(&["cluster", "list", "--admin", &admin]);
    assert_eq!(listed.matches(" voter").count(), 4, "{listed}");
    codetta(&["volume", "add-replica", "root", "s4", "--admin", &admin]);
    assert!(
        codetta(&["volume", "info", "root", "--admin", &admin]).contains("s4 (replica"),
        "s4 holds a replica"
    );
    // A server holding replicas is not removed.
    let refused = Command::new(codetta_binary())
        .args(["cluster", "remove-server", "s4", "--admin", &admin])
        .output()
        .expect("run");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("still holds replicas"));

    // s4 is filled; once it agrees, it alone serves the file.
    let g = nfs.create(&root, "after.txt").await.expect("create");
    nfs.write(&g, 0, b"written with four", stable_how::FILE_SYNC)
        .await
        .expect("write");
    // Wait until every replica has caught up with every other (s4 holds the new file):
    // `codetta status` over all four servers shows the volume in sync.
    let status_toml = etc.join("status.toml");
    let mut text = std::fs::read_to_string(&admin).expect("admin.toml");
    for i in 0..4 {
        text.push_str(&format!(
            "\n[[servers]]\nname = \"s{}\"\naddr = \"{}\"\n",
            i + 1,
            addr(i)
        ));
    }
    std::fs::write(&status_toml, text).expect("status.toml");
    codetta_until(
        &["status", "--json", "--admin", &s(&status_toml)],
        Duration::from_secs(60),
        |out| {
            let Ok(report) = serde_json::from_str::<serde_json::Value>(out) else {
                return false;
            };
            report["volumes"].as_array().is_some_and(|volumes| {
                volumes.iter().any(|v| {
                    v["name"] == "root"
                        && v["awaiting_resolution"] == 0
                        && v["in_sync"].as_array().is_some_and(|s| s.len() == 4)
                })
            })
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for server in servers.iter_mut().take(3) {
        server.kill();
    }
    loop {
        let read = nfs.read_all(&f).await;
        if read.as_deref() == Ok(b"deployed".as_slice()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "s4 alone does not serve the file: {read:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(nfs.read_all(&g).await.expect("read"), b"written with four");

    // Revocation needs the catalogue's majority: bring s1-s3 back, revoke c1.
    for (i, name) in names[..3].iter().enumerate() {
        servers[i] = Proc::spawn(
            codetta_binary(),
            &["server", "--config", &s(&etc.join(format!("{name}.toml")))],
            &dir.join(format!("{name}.log")),
        )
        .expect("restart");
    }
    let fingerprint = codetta(&["certs", "fingerprint", &s(&etc.join("c1.pem"))]);
    codetta_until(
        &[
            "cluster",
            "revoke",
            "--fingerprint",
            fingerprint.trim(),
            "--note",
            "laptop lost",
            "--admin",
            &admin,
        ],
        Duration::from_secs(60),
        |_| true,
    )
    .await;
    assert!(codetta(&["cluster", "list", "--admin", &admin]).contains("laptop lost"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = nfs.create(&root, "refused.txt").await;
        if h.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "a revoked client still writes");
        let _ = nfs.remove(&root, "refused.txt").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Rotation: a new certificate for the same name works while the old one is refused.
    let rotated = etc.join("rotated");
    std::fs::create_dir_all(&rotated).expect("dir");
    codetta(&[
        "certs",
        "issue",
        "--dir",
        &s(&ca),
        "--role",
        "client",
        "--name",
        "c1",
        "--out",
        &s(&rotated),
    ]);
    let port2 = codetta_cluster::free_port().expect("port");
    let text = std::fs::read_to_string(&client_toml)
        .expect("client.toml")
        .replace(
            &format!("127.0.0.1:{nfs_port}"),
            &format!("127.0.0.1:{port2}"),
        )
        .replace(&s(&etc.join("c1.pem")), &s(&rotated.join("c1.pem")))
        .replace(&s(&etc.join("c1.key")), &s(&rotated.join("c1.key")))
        .replace(
            &s(&dir.join("var").join("client")),
            &s(&dir.join("var").join("client2")),
        );
    let client2_toml = etc.join("client2.toml");
    std::fs::write(&client2_toml, text).expect("client2.toml");
    let _client2 = Proc::spawn(
        codetta_binary(),
        &["client", "--config", &s(&client2_toml)],
        &dir.join("client2.log"),
    )
    .expect("client");
    crate::support::wait_for_tcp(port2).await;
    let mut nfs2 = Nfs::connect(port2).await.expect("mount");
    let root2 = nfs2.root.clone();
    let h = codetta_bench::patiently!(nfs2.lookup(&root2, "after.txt").await).expect("lookup");
    assert_eq!(
        codetta_bench::patiently!(nfs2.read_all(&h).await).expect("read"),
        b"written with four"
    );
}
