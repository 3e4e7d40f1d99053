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

/// Listings start with `.` and `..` (the directory and its parent, by fileid), every
/// cookie stays below 2^63 (the Linux client takes cookies for signed offsets), a listing
/// resumed at any cookie (`seekdir` after `telldir`) goes on with exactly the entries after
/// it, and a cookie offered with another verifier is refused BAD_COOKIE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_have_dots_and_seekable_cookies_below_2_pow_63() {
    let cluster = Cluster::start().await;
    let mut nfs = cluster.nfs().await;
    let root = nfs.root.clone();
    let d = nfs.mkdir(&root, "many").await.expect("mkdir");
    for i in 0..1000 {
        nfs.create(&d, &format!("entry-{i:04}"))
            .await
            .expect("create");
    }
    let fileid = |a: fattr3| a.fileid;
    let (first, verifier, _) = nfs.readdir_page(&d, 0, [0; 8], 4096).await.expect("page");
    assert_ne!(verifier, [0; 8], "a cookie verifier");
    assert_eq!(first[0].0, ".");
    assert_eq!(
        first[0].2,
        nfs.getattr(&d).await.map(fileid).expect("attrs")
    );
    assert_eq!(first[1].0, "..");
    assert_eq!(
        first[1].2,
        nfs.getattr(&root).await.map(fileid).expect("attrs")
    );
    // The whole listing, page by page.
    let mut all = Vec::new();
    let mut cookie = 0;
    loop {
        let (page, _, eof) = nfs
            .readdir_page(&d, cookie, verifier, 8192)
            .await
            .expect("page");
        if let Some(last) = page.last() {
            cookie = last.1;
        }
        all.extend(page);
        if eof {
            break;
        }
    }
    assert_eq!(all.len(), 1002, "1,000 entries, `.` and `..`");
    assert!(
        all.iter().all(|(_, c, _)| *c < 1 << 63),
        "cookies below 2^63"
    );
    let names: std::collections::HashSet<&str> = all.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names.len(), 1002, "no name twice");
    // Resumed at a cookie, the listing goes on with what followed it.
    for at in [0usize, 1, 2, 3, 500, 998, 1001] {
        let (page, _, eof) = nfs
            .readdir_page(&d, all[at].1, verifier, 1 << 20)
            .await
            .expect("resumed");
        let rest: Vec<&str> = page.iter().map(|(n, _, _)| n.as_str()).collect();
        let expected: Vec<&str> = all[at + 1..].iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(rest, expected, "resumed after entry {at}");
        assert!(eof);
    }
    assert_eq!(
        nfs.readdir_page(&d, all[500].1, *b"oldverf!", 8192)
            .await
            .map(|_| ()),
        Err(nfsstat3::NFS3ERR_BAD_COOKIE),
        "a cookie of another scheme"
    );
    cluster.shutdown().await;
}

/// A plain READDIR listing survives changes to the directory between its pages, as
/// READDIRPLUS does: no BAD_COOKIE, and every entry there from start to end listed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_listing_survives_concurrent_creates() {
    let cluster = Cluster::start().await;
    let mut nfs = cluster.nfs().await;
    let mut other = cluster.nfs().await;
    let root = nfs.root.clone();
    let d = nfs.mkdir(&root, "busy").await.expect("mkdir");
    for i in 0..600 {
        nfs.create(&d, &format!("old-{i:03}"))
            .await
            .expect("create");
    }
    let mut seen = std::collections::HashMap::new();
    let (mut cookie, mut verifier, mut pages) = (0, [0; 8], 0);
    loop {
        let (page, v, eof) = nfs
            .readdir_page(&d, cookie, verifier, 2048)
            .await
            .expect("page");
        verifier = v;
        pages += 1;
        for (name, c, _) in page {
            *seen.entry(name).or_insert(0) += 1;
            cookie = c;
        }
        if eof {
            break;
        }
        for j in 0..20 {
            other
                .create(&d, &format!("new-{pages}-{j}"))
                .await
                .expect("create between pages");
        }
    }
    assert!(pages > 5, "the listing took several pages ({pages})");
    for i in 0..600 {
        assert_eq!(
            seen.get(&format!("old-{i:03}")),
            Some(&1),
            "old-{i:03} listed once"
        );
    }
    assert!(seen.values().all(|n| *n == 1), "no entry twice");
    cluster.shutdown().await;
}

/// LINK: one file under several names (nlink counts them), the data shared, each name
/// removable on its own; what LINK refuses; FSINFO and PATHCONF announce links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_links() {
    let cluster = Cluster::start().await;
    let mut nfs = cluster.nfs().await;
    let root = nfs.root.clone();
    let d = nfs.mkdir(&root, "d").await.expect("mkdir");
    let f = nfs.create(&root, "f").await.expect("create");
    nfs.write(&f, 0, b"one object", stable_how::FILE_SYNC)
        .await
        .expect("write");
    assert_eq!(nfs.link(&f, &d, "g").await, Ok(2));
    assert_eq!(nfs.link(&f, &root, "h").await, Ok(3));
    assert_eq!(nfs.getattr(&f).await.expect("attr").nlink, 3);
    let g = nfs.lookup(&d, "g").await.expect("lookup");
    assert_eq!(g, f, "one handle for every name");
    nfs.write(&g, 4, b"OBJECT", stable_how::FILE_SYNC)
        .await
        .expect("write through the link");
    assert_eq!(nfs.read_all(&f).await.expect("read"), b"one OBJECT");
    let mut names = nfs.list(&root).await.expect("list");
    names.sort();
    assert_eq!(names, ["d", "f", "h"]);

    // What LINK refuses.
    assert_eq!(nfs.link(&f, &d, "g").await, Err(nfsstat3::NFS3ERR_EXIST));
    assert_eq!(nfs.link(&d, &root, "d2").await, Err(nfsstat3::NFS3ERR_PERM));
    assert_eq!(nfs.link(&f, &f, "x").await, Err(nfsstat3::NFS3ERR_NOTDIR));
    assert_eq!(nfs.link(&f, &d, "").await, Err(nfsstat3::NFS3ERR_INVAL));

    // Names go one at a time; the object with the last.
    nfs.remove(&root, "f").await.expect("remove one name");
    assert_eq!(nfs.getattr(&g).await.expect("attr").nlink, 2);
    assert_eq!(nfs.read_all(&g).await.expect("read"), b"one OBJECT");
    nfs.rename(&root, "h", &d, "g")
        .await
        .expect("rename onto itself");
    assert_eq!(nfs.getattr(&g).await.expect("attr").nlink, 2);
    nfs.rename(&root, "h", &d, "moved")
        .await
        .expect("rename a link");
    assert_eq!(nfs.lookup(&d, "moved").await, Ok(g.clone()));
    assert_eq!(nfs.lookup(&root, "h").await, Err(nfsstat3::NFS3ERR_NOENT));
    nfs.remove(&d, "g").await.expect("remove");
    assert_eq!(nfs.getattr(&g).await.expect("attr").nlink, 1);
    nfs.remove(&d, "moved").await.expect("remove the last name");
    assert_eq!(
        nfs.getattr(&g).await.map(|_| ()),
        Err(nfsstat3::NFS3ERR_STALE)
    );
    let info = nfs.fsinfo().await.expect("fsinfo");
    assert_eq!(info.properties & FSF3_LINK, FSF3_LINK);
    cluster.shutdown().await;
}
