//! A store refuses to open on a filesystem that folds letter case, tested on
//! a real one: a FAT image mounted through FUSE with `fusefat` (Debian
//! packages `fusefat` and `dosfstools`; mounting needs root and
//! `/dev/fuse`). Without those the test prints `SKIPPED`, or fails under
//! `ENCSTORE_REQUIRE_SERVICES=1` when `ENCSTORE_REQUIRE_FUSEFAT=1` says the
//! tools are expected. (ext4 and tmpfs casefolding need kernel support this
//! build machine lacks; the probe's comparison itself is unit-tested in
//! `src/probe.rs` on any filesystem.)
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use encstore_core::Error;
use encstore_fs::FsStorage;

fn tool_runs(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// True when a FAT image can be made and mounted; otherwise prints
/// `SKIPPED` (or fails, see the module documentation).
fn fusefat_or_skip(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        .unwrap_or(false);
    let have = root
        && Path::new("/dev/fuse").exists()
        && tool_runs("mkfs.vfat", "--help")
        && tool_runs("fusefat", "-h");
    if have {
        return true;
    }
    let required = std::env::var("ENCSTORE_REQUIRE_SERVICES").as_deref() == Ok("1")
        && std::env::var("ENCSTORE_REQUIRE_FUSEFAT").as_deref() == Ok("1");
    if required {
        panic!("{test}: needs root, /dev/fuse, mkfs.vfat (dosfstools) and fusefat");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test}: needs root, /dev/fuse, mkfs.vfat (dosfstools) and fusefat \
         (apt-get install dosfstools fusefat)"
    );
    false
}

/// A mounted FAT image; unmounted on drop.
struct Fat {
    mnt: PathBuf,
}

impl Fat {
    fn mount(img: &Path, mnt: &Path, rw: bool) -> Fat {
        std::fs::create_dir_all(mnt).unwrap();
        let status = Command::new("fusefat")
            .args(["-o", if rw { "rw+" } else { "ro" }])
            .arg(img)
            .arg(mnt)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "fusefat failed: {status}");
        Fat {
            mnt: mnt.to_path_buf(),
        }
    }
}

impl Drop for Fat {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

fn expect_case_refusal(r: Result<FsStorage, Error>) {
    match r {
        Err(Error::Unsupported {
            backend: "fs",
            op: "open",
            reason,
        }) => assert!(
            reason.contains("folds letter case") && reason.contains("share one file"),
            "unclear reason: {reason}"
        ),
        other => panic!("expected the store to be refused, got {other:?}"),
    }
}

/// On a FAT filesystem (which folds case: `Probe` and `PROBE` are one
/// file), opening a store is refused with `Unsupported` and a clear reason,
/// and nothing is left in ROOT. A read-only opener of a store on such a
/// filesystem (which cannot create the probe) is refused too, by comparing
/// the lock directory's name with its upper-case spelling.
#[test]
fn a_case_folding_filesystem_is_refused() {
    if !fusefat_or_skip("a_case_folding_filesystem_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fat.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    let ok = Command::new("mkfs.vfat")
        .arg(&img)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfs.vfat failed");
    let mnt = dir.path().join("mnt");
    {
        let fat = Fat::mount(&img, &mnt, true);
        // It really folds case.
        std::fs::write(fat.mnt.join("Probe"), b"x").unwrap();
        assert!(fat.mnt.join("PROBE").exists(), "FAT should fold case");
        std::fs::remove_file(fat.mnt.join("Probe")).unwrap();

        let root = fat.mnt.join("store");
        std::fs::create_dir(&root).unwrap();
        expect_case_refusal(FsStorage::new(&root));
        let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
        assert!(left.is_empty(), "nothing is created: {left:?}");
        // A ROOT it would have to create is refused too.
        expect_case_refusal(FsStorage::new(fat.mnt.join("new/store")));
        // Leave a lock directory behind for the read-only opener below.
        std::fs::create_dir(root.join(".encstore-locks")).unwrap();
    }
    let fat = Fat::mount(&img, &mnt, false);
    expect_case_refusal(FsStorage::new(fat.mnt.join("store")));
}
