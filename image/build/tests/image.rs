//! Builds the qemu-x86_64 image through the library (as the HIL harness does) and checks it against
//! image/README.md "Interfaces": the GPT, each partition's content, grubenv, slot A = slot B, the
//! initramfs layout, reproducibility, and the harness's edit path (slot B rewritten, grubenv set).
//! Needs the host tools of image/build/README.md; without them it says so loudly and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use edge_image::board::Board;
use edge_image::build::{BuildOptions, build_image};
use edge_image::disk::{
    Gpt, Layout, Partition, TYPE_ESP, TYPE_LINUX, derived_guid, read_partition, write_partition,
};
use edge_image::grubenv::{read_grubenv, set_grubenv};
use edge_image::slot::{SlotContent, build_slot};

const TOOLS: &[&str] = &[
    "apt-get",
    "debugfs",
    "depmod",
    "dpkg-deb",
    "grub-mkimage",
    "grub-editenv",
    "gzip",
    "mcopy",
    "mdir",
    "mke2fs",
    "mkfs.vfat",
    "mksquashfs",
    "unsquashfs",
    "modprobe",
    "sfdisk",
    "cpio",
    "dumpe2fs",
];

fn have(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|d| d.join(tool).is_file())
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tool(name: &str) -> Command {
    for d in ["/usr/sbin", "/sbin"] {
        let p = Path::new(d).join(name);
        if p.is_file() {
            return Command::new(p);
        }
    }
    Command::new(name)
}

#[test]
fn qemu_x86_64_image_matches_the_interfaces() {
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !have(t)).collect();
    if !missing.is_empty() {
        eprintln!(
            "\n\n*** SKIPPED qemu_x86_64_image_matches_the_interfaces: missing host tools {missing:?} \
             (see image/build/README.md for the Debian packages) ***\n"
        );
        return;
    }
    let board = Board::named("qemu-x86_64").expect("qemu-x86_64 board file");
    let base = std::env::temp_dir().join(format!("edge-image-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let opts = BuildOptions {
        out_dir: base.join("a"),
        test_hooks: true,
        version: Some("9.9.9-test".into()),
        ..BuildOptions::default()
    };
    let report = build_image(&board, &opts).unwrap_or_else(|e| panic!("build failed: {e}"));
    eprintln!("{report}");
    let img = &report.image;
    assert_eq!(img, &base.join("a/qemu-x86_64.img"));

    // GPT: four partitions where the layout says, named, typed, GUIDs from the board name.
    let layout = Layout::new(&board.partitions);
    assert_eq!(std::fs::metadata(img).unwrap().len(), layout.total_bytes());
    assert!(layout.total_bytes() <= 64 * 1024 * 1024, "QEMU image over 64 MiB");
    let gpt = Gpt::read(img).unwrap();
    assert_eq!(gpt.disk_guid, derived_guid("qemu-x86_64", "disk"));
    assert_eq!(gpt.entries.len(), 4);
    for p in Partition::ALL {
        let e = gpt.find(p).unwrap_or_else(|| panic!("no {p}"));
        assert_eq!(e.number, u32::from(p.number()));
        assert_eq!((e.offset(), e.size()), (layout.offset(p), layout.size(p)), "{p}");
        assert_eq!(
            e.type_guid,
            if p == Partition::Esp { TYPE_ESP } else { TYPE_LINUX }
        );
        assert_eq!(e.guid, derived_guid("qemu-x86_64", p.name()));
    }
    let dump = sh(tool("sfdisk").arg("--dump").arg(img));
    assert!(dump.contains("name=\"slotB\""), "{dump}");

    // ESP: GRUB and a fresh grubenv, which grub-editenv reads the same.
    let esp = format!("{}@@{}", img.display(), layout.offset(Partition::Esp));
    let listing = sh(tool("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-b", "-i", &esp, "::/EFI/BOOT"]));
    assert!(listing.contains("BOOTX64.EFI"), "{listing}");
    assert!(listing.contains("grubenv"), "{listing}");
    let env = read_grubenv(img).unwrap();
    assert_eq!(env.get("boot_order"), Some("A B"));
    assert_eq!(env.get("A_left"), Some("3"));
    assert_eq!(env.get("B_left"), Some("0"));
    let envfile = base.join("grubenv");
    sh(tool("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-n", "-i", &esp, "::/EFI/BOOT/grubenv"])
        .arg(&envfile));
    assert_eq!(std::fs::metadata(&envfile).unwrap().len(), 1024);
    let listed = sh(tool("grub-editenv").arg(&envfile).arg("list"));
    assert_eq!(listed, "boot_order=A B\nA_left=3\nB_left=0\n");
    let efi = std::fs::read(report.work_dir.join("esp/EFI/BOOT/BOOTX64.EFI")).unwrap();
    let cfg = String::from_utf8_lossy(&efi);
    assert!(
        cfg.contains("appl.data=/dev/vda4 appl.testhooks=1"),
        "the A/B script is in the EFI binary"
    );

    // Slots: identical, with the README's files.
    let a = read_partition(img, Partition::SlotA).unwrap();
    assert!(
        a == read_partition(img, Partition::SlotB).unwrap(),
        "slot A and B differ in a fresh image"
    );
    let slot = SlotContent::from_image(img, Partition::SlotA, &base.join("slotA")).unwrap();
    assert_eq!(slot.version, "9.9.9-test");
    assert!(
        slot.init_toml.contains("path = \"/slot/usr/bin/gatewayd\""),
        "{}",
        slot.init_toml
    );
    assert!(
        slot.gatewayd_toml.contains("port = 5066"),
        "{}",
        slot.gatewayd_toml
    );
    assert_eq!(
        std::fs::read(&slot.kernel).unwrap().len(),
        std::fs::read(report.work_dir.join("vmlinuz")).unwrap().len()
    );
    let gw = std::fs::metadata(&slot.gatewayd).unwrap();
    assert!(gw.len() > 1_000_000, "gatewayd is a real binary");
    let listing = sh(tool("unsquashfs")
        .args(["-lls", "-d", "r"])
        .arg(report.work_dir.join("slot.squashfs")));
    for want in [
        "r/boot/vmlinuz",
        "r/boot/initrd.img",
        "r/usr/bin/gatewayd",
        "r/etc/rtc-edge/version",
        "r/etc/rtc-edge/gatewayd.toml",
        "r/etc/rtc-edge/init.toml",
    ] {
        assert!(listing.contains(want), "{want} missing:\n{listing}");
    }
    assert!(
        listing
            .lines()
            .all(|l| !l.contains(" r/") || l.contains("root/root")),
        "{listing}"
    );
    assert!(listing.contains("-rwxr-xr-x root/root") && listing.contains("r/usr/bin/gatewayd"));

    // Initramfs: /init, modules.list naming /mods files, dependencies before i6300esb with its parameter.
    let cpio = sh(Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -dc {} | cpio -t --quiet", slot.initrd.display())));
    let names: Vec<&str> = cpio.lines().collect();
    assert!(
        names.contains(&"init") && names.contains(&"modules.list"),
        "{names:?}"
    );
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "cpio entries are sorted");
    let modules = std::fs::read_to_string(report.work_dir.join("modules.list")).unwrap();
    for line in modules.lines() {
        let file = line.split(' ').next().unwrap();
        assert!(
            names.contains(&file.trim_start_matches('/')),
            "{file} not in the initramfs"
        );
    }
    let pos = |m: &str| {
        modules
            .lines()
            .position(|l| l.starts_with(m))
            .unwrap_or_else(|| panic!("{m}"))
    };
    assert!(pos("/mods/watchdog.ko") < pos("/mods/i6300esb.ko"));
    assert!(pos("/mods/virtio.ko") < pos("/mods/virtio_blk.ko"));
    assert!(modules.contains("/mods/i6300esb.ko heartbeat=10\n"), "{modules}");
    let verbose = sh(Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -dc {} | cpio -tv --quiet", slot.initrd.display())));
    assert!(
        verbose.lines().all(|l| l.contains(" root     root ")),
        "{verbose}"
    );

    // Data: ext4 labelled data, with /etc/rtc-edge and /log.
    let data = report.work_dir.join("data.img");
    let head = sh(tool("dumpe2fs").arg("-h").arg(&data));
    assert!(head.contains("Filesystem volume name:   data"), "{head}");
    let ls = sh(tool("debugfs").args(["-R", "ls -p /etc"]).arg(&data));
    assert!(ls.contains("/rtc-edge/"), "{ls}");
    let ls = sh(tool("debugfs").args(["-R", "ls -p /"]).arg(&data));
    assert!(ls.contains("/log/"), "{ls}");
    let on_disk = read_partition(img, Partition::Data).unwrap();
    assert_eq!(
        &on_disk[..usize::try_from(std::fs::metadata(&data).unwrap().len()).unwrap()],
        std::fs::read(&data).unwrap()
    );

    // Reproducible: a second build gives the same bytes.
    let again = build_image(
        &board,
        &BuildOptions {
            out_dir: base.join("b"),
            progress: false,
            ..opts
        },
    )
    .unwrap_or_else(|e| panic!("second build failed: {e}"));
    assert_eq!(again.sha256, report.sha256, "two builds of one board differ");

    // The harness's edit path: another slot B, then B first in the boot order.
    let mut b = slot;
    b.version = "9.9.10-test".into();
    b.gatewayd_toml.push_str("# slot B\n");
    let sq = base.join("slotB.squashfs");
    let len = build_slot(&b, &sq).unwrap();
    assert!(len < layout.size(Partition::SlotB));
    write_partition(img, Partition::SlotB, &std::fs::read(&sq).unwrap()).unwrap();
    let back = SlotContent::from_image(img, Partition::SlotB, &base.join("slotB")).unwrap();
    assert_eq!(back.version, "9.9.10-test");
    assert!(back.gatewayd_toml.ends_with("# slot B\n"));
    assert!(
        read_partition(img, Partition::SlotA).unwrap() == a,
        "slot A untouched"
    );
    let env = set_grubenv(img, &[("boot_order", "B A"), ("B_left", "3")]).unwrap();
    assert_eq!(env.get("boot_order"), Some("B A"));
    let env = read_grubenv(img).unwrap();
    assert_eq!(
        (env.get("boot_order"), env.get("A_left"), env.get("B_left")),
        (Some("B A"), Some("3"), Some("3"))
    );
    sh(tool("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-o", "-n", "-i", &esp, "::/EFI/BOOT/grubenv"])
        .arg(&envfile));
    assert_eq!(
        sh(tool("grub-editenv").arg(&envfile).arg("list")),
        "boot_order=B A\nA_left=3\nB_left=3\n"
    );
    assert!(
        write_partition(img, Partition::Esp, &vec![1u8; 9 * 1024 * 1024]).is_err(),
        "oversized write refused"
    );

    let _ = std::fs::remove_dir_all(&base);
}
