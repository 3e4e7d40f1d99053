//! Every NFS procedure through the endpoint, one small cluster per test.

use crate::support::Cluster;
use crate::support::nfs::{Nfs, mode};
use nfs3_client::nfs3_types::nfs3::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_through_the_endpoint() {
    let cluster = Cluster::start().await;
    let mut nfs = cluster.nfs().await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "hello.txt").await.expect("create");
    let w = nfs
        .write(&f, 0, b"hello world", stable_how::UNSTABLE)
        .await
        .expect("write");
    assert_eq!(w.committed, stable_how::UNSTABLE);
    // The client's own unshipped write is visible at once.
    assert_eq!(nfs.getattr(&f).await.expect("getattr").size, 11);
    nfs.commit(&f).await.expect("commit");
    assert_eq!(nfs.read_all(&f).await.expect("read"), b"hello world");
    let w = nfs
        .write(&f, 6, b"WORLD", stable_how::FILE_SYNC)
        .await
        .expect("write");
    assert_eq!(w.committed, stable_how::FILE_SYNC);
    assert_eq!(nfs.read_all(&f).await.expect("read"), b"hello WORLD");
    assert_eq!(nfs.lookup(&root, "hello.txt").await.expect("lookup"), f);
    assert_eq!(
        nfs.lookup(&root, "nope").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    let attrs = nfs.getattr(&f).await.expect("getattr");
    assert_eq!(
        (attrs.type_, attrs.mode, attrs.nlink),
        (ftype3::NF3REG, 0o644, 1)
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_operations() {
    let cluster = Cluster::start().await;
    let mut nfs = cluster.nfs().await;
    let root = nfs.root.clone();
    let d = nfs.mkdir(&root, "d").await.expect("mkdir");
    assert_eq!(nfs.mkdir(&root, "d").await, Err(nfsstat3::NFS3ERR_EXIST));
    let e = nfs.mkdir(&d, "e").await.expect("mkdir nested");
    assert_eq!(nfs.lookup(&e, "..").await.expect("dotdot"), d);
    assert_eq!(nfs.lookup(&root, "..").await.expect("root dotdot"), root);
    assert_eq!(nfs.getattr(&d).await.expect("attr").nlink, 3);
    let a = nfs.create(&d, "a").await.expect("create");
    nfs.write(&a, 0, b"A", stable_how::FILE_SYNC)
        .await
        .expect("write");
    let b = nfs.create(&root, "b").await.expect("create");
    nfs.write(&b, 0, b"B", stable_how::FILE_SYNC)
        .await
        .expect("write");
    // Rename across directories over an existing file replaces it.
    nfs.rename(&d, "a", &root, "b").await.expect("rename over");
    assert_eq!(nfs.lookup(&d, "a").await, Err(nfsstat3::NFS3ERR_NOENT));
    let b2 = nfs.lookup(&root, "b").await.expect("lookup");
    assert_eq!(b2, a);
    assert_eq!(nfs.read_all(&b2).await.expect("read"), b"A");
    assert_eq!(
        nfs.getattr(&b).await.map(|_| ()),
        Err(nfsstat3::NFS3ERR_STALE)
    );
    // A directory cannot move into itself.
    assert_eq!(
        nfs.rename(&root, "d", &e, "d").await,
        Err(nfsstat3::NFS3ERR_INVAL)
    );
    // Non-empty directories stay.
    assert_eq!(nfs.rmdir(&root, "d").await, Err(nfsstat3::NFS3ERR_NOTEMPTY));
    nfs.rmdir(&d, "e").await.expect("rmdir");
    nfs.rmdir(&root, "d").await.expect("rmdir now empty");
    // Symlinks.
    let l = nfs.symlink(&root, "link", "b").await.expect("symlink");
    assert_eq!(nfs.readlink(&l).await.expect("readlink"), b"b");
    assert_eq!(nfs.getattr(&l).await.expect("attr").type_, ftype3::NF3LNK);
    nfs.remove(&root, "link").await.expect("remove symlink");
    let mut names = nfs.list(&root).await.expect("list");
    names.sort();
    assert_eq!(names, vec!["b".to_string()]);
    // Plain READDIR, in pages small enough to need several calls.
    let d = nfs.mkdir(&root, "many").await.expect("mkdir");
    for i in 0..40 {
        nfs.create(&d, &format!("n{i:02}")).await.expect("create");
    }
    let mut plain = nfs.list_plain(&d, 512).await.expect("readdir");
    plain.sort();
    let expected: Vec<String> = (0..40).map(|i| format!("n{i:02}")).collect();
    assert_eq!(plain, expected);
    let info = nfs.fsinfo().await.expect("fsinfo");
    assert_eq!((info.rtmax, info.wtmax), (1 << 20, 1 << 20));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_get_clear_statuses() {
    let cluster = Cluster::start().await;
    let mut nfs = cluster.nfs().await;
    let root = nfs.root.clone();
    let long = "x".repeat(256);
    assert_eq!(
        nfs.create(&root, &long).await,
        Err(nfsstat3::NFS3ERR_NAMETOOLONG)
    );
    assert_eq!(nfs.create(&root, "a/b").await, Err(nfsstat3::NFS3ERR_INVAL));
    assert_eq!(
        nfs.create(&root, "a\0b").await,
        Err(nfsstat3::NFS3ERR_INVAL)
    );
    assert!(nfs.mkdir(&root, "..").await.is_err());
    assert!(nfs.create(&root, &"y".repeat(255)).await.is_ok());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_create_and_setattr() {
    let cluster = Cluster::start().await;
    let mut nfs = cluster.nfs().await;
    let root = nfs.root.clone();
    let verf = createverf3([7; 8]);
    let f = nfs
        .create_how(&root, "lock", createhow3::EXCLUSIVE(verf))
        .await
        .expect("exclusive");
    // A resend with the same verifier is the same create; another verifier is EEXIST.
    assert_eq!(
        nfs.create_how(&root, "lock", createhow3::EXCLUSIVE(verf))
            .await
            .expect("resend"),
        f
    );
    assert_eq!(
        nfs.create_how(&root, "lock", createhow3::EXCLUSIVE(createverf3([8; 8])))
            .await,
        Err(nfsstat3::NFS3ERR_EXIST)
    );
    assert_eq!(
        nfs.create_how(&root, "lock", createhow3::GUARDED(mode(0o600)))
            .await,
        Err(nfsstat3::NFS3ERR_EXIST)
    );
    // chmod, truncate up (a hole reads as zeros) and down, times.
    nfs.setattr(&f, mode(0o600)).await.expect("chmod");
    nfs.write(&f, 0, b"abc", stable_how::FILE_SYNC)
        .await
        .expect("write");
    nfs.setattr(
        &f,
        sattr3 {
            size: Nfs3Option::Some(10),
            ..sattr3::default()
        },
    )
    .await
    .expect("extend");
    assert_eq!(nfs.read_all(&f).await.expect("read"), b"abc\0\0\0\0\0\0\0");
    nfs.setattr(
        &f,
        sattr3 {
            size: Nfs3Option::Some(2),
            mtime: set_mtime::SET_TO_CLIENT_TIME(nfstime3 {
                seconds: 981_173_106,
                nseconds: 0,
            }),
            ..sattr3::default()
        },
    )
    .await
    .expect("truncate");
    let attrs = nfs.getattr(&f).await.expect("attr");
    assert_eq!(
        (attrs.mode, attrs.size, attrs.mtime.seconds),
        (0o600, 2, 981_173_106)
    );
    assert_eq!(nfs.read_all(&f).await.expect("read"), b"ab");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_follow_the_callers_credential() {
    let cluster = Cluster::start().await;
    let mut root_nfs = cluster.nfs().await;
    let root = root_nfs.root.clone();
    let d = root_nfs.mkdir(&root, "home").await.expect("mkdir");
    root_nfs
        .setattr(
            &d,
            sattr3 {
                mode: Nfs3Option::Some(0o777),
                ..sattr3::default()
            },
        )
        .await
        .expect("chmod");
    let mut alice = Nfs::connect_as(cluster.nfs_port(), 1000, 1000)
        .await
        .expect("mount");
    let mut bob = Nfs::connect_as(cluster.nfs_port(), 1001, 1001)
        .await
        .expect("mount");
    let f = alice.create(&d, "private").await.expect("alice creates");
    assert_eq!(alice.getattr(&f).await.expect("attr").uid, 1000);
    alice
        .write(&f, 0, b"secret", stable_how::FILE_SYNC)
        .await
        .expect("write");
    alice.setattr(&f, mode(0o600)).await.expect("chmod");
    assert_eq!(
        bob.read(&f, 0, 10).await.map(|_| ()),
        Err(nfsstat3::NFS3ERR_ACCES)
    );
    assert_eq!(
        bob.write(&f, 0, b"x", stable_how::FILE_SYNC)
            .await
            .map(|_| ()),
        Err(nfsstat3::NFS3ERR_ACCES)
    );
    assert_eq!(
        bob.setattr(&f, mode(0o666)).await,
        Err(nfsstat3::NFS3ERR_PERM)
    );
    assert_eq!(
        bob.create(&root, "nope").await.map(|_| ()),
        Err(nfsstat3::NFS3ERR_ACCES)
    );
    assert_eq!(root_nfs.read_all(&f).await.expect("root reads"), b"secret");
    cluster.shutdown().await;
}
