//! The disk: GPT layout arithmetic, the `sfdisk` script that writes it, reading it back, and writing one
//! partition of an existing image file.
//!
//! Layout (image/README.md "Disk"): 1 MiB for the protective MBR and primary GPT, then partitions 1 `esp`,
//! 2 `slotA`, 3 `slotB`, 4 `data`, each MiB-aligned and back to back, then 1 MiB holding the backup GPT.
//! GUIDs are derived from the board name, so two builds of one board give the same table.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::str::FromStr;

use crate::Error;
use crate::board::Partitions;

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;
/// Logical sector size of the image.
pub const SECTOR: u64 = 512;
/// [`SECTOR`] as a buffer length.
const SECTOR_LEN: usize = 512;
/// [`MIB`] as a buffer length.
const MIB_LEN: usize = 1024 * 1024;

/// GPT partition type of the ESP.
pub const TYPE_ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// GPT partition type "Linux filesystem data" (slots and data).
pub const TYPE_LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// The four partitions, in disk order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partition {
    /// 1: the EFI system partition (FAT): GRUB and grubenv.
    Esp,
    /// 2: slot A (squashfs).
    SlotA,
    /// 3: slot B (squashfs).
    SlotB,
    /// 4: data (ext4, label `data`).
    Data,
}

impl Partition {
    /// All partitions in disk order.
    pub const ALL: [Self; 4] = [Self::Esp, Self::SlotA, Self::SlotB, Self::Data];

    /// The GPT partition name (`esp`, `slotA`, `slotB`, `data`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Esp => "esp",
            Self::SlotA => "slotA",
            Self::SlotB => "slotB",
            Self::Data => "data",
        }
    }

    /// The 1-based partition number.
    pub fn number(self) -> u8 {
        match self {
            Self::Esp => 1,
            Self::SlotA => 2,
            Self::SlotB => 3,
            Self::Data => 4,
        }
    }

    /// The slot partition of `A` or `B`.
    pub fn slot(letter: char) -> Option<Self> {
        match letter {
            'A' => Some(Self::SlotA),
            'B' => Some(Self::SlotB),
            _ => None,
        }
    }

    fn type_guid(self) -> &'static str {
        match self {
            Self::Esp => TYPE_ESP,
            Self::SlotA | Self::SlotB | Self::Data => TYPE_LINUX,
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Partition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown partition \"{s}\" (esp, slotA, slotB, data)"))
    }
}

/// Where each partition lies, from a board's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    sizes_mib: [u64; 4],
}

impl Layout {
    /// The layout of a board's partitions.
    pub fn new(p: &Partitions) -> Self {
        Self {
            sizes_mib: [
                u64::from(p.esp_mib),
                u64::from(p.slot_mib),
                u64::from(p.slot_mib),
                u64::from(p.data_mib),
            ],
        }
    }

    fn index(p: Partition) -> usize {
        usize::from(p.number() - 1)
    }

    /// Byte offset of a partition in the image.
    pub fn offset(&self, p: Partition) -> u64 {
        MIB + self.sizes_mib[..Self::index(p)].iter().sum::<u64>() * MIB
    }

    /// Size of a partition in bytes.
    pub fn size(&self, p: Partition) -> u64 {
        self.sizes_mib[Self::index(p)] * MIB
    }

    /// Size of the whole image: 1 MiB head, the partitions, 1 MiB tail for the backup GPT.
    pub fn total_bytes(&self) -> u64 {
        MIB + self.sizes_mib.iter().sum::<u64>() * MIB + MIB
    }

    /// The `sfdisk` script writing this layout, with GUIDs derived from `board`.
    pub fn sfdisk_script(&self, board: &str) -> String {
        let mut s = format!(
            "label: gpt\nlabel-id: {}\nunit: sectors\nsector-size: {SECTOR}\nfirst-lba: 2048\n",
            derived_guid(board, "disk")
        );
        for p in Partition::ALL {
            s.push_str(&format!(
                "start={}, size={}, type={}, uuid={}, name={}\n",
                self.offset(p) / SECTOR,
                self.size(p) / SECTOR,
                p.type_guid(),
                derived_guid(board, p.name()),
                p.name()
            ));
        }
        s
    }
}

/// A stable GUID (RFC 4122 version 4 layout) derived from a board name and a role, so that rebuilding a
/// board gives the same disk and partition GUIDs, and different boards different ones.
pub fn derived_guid(board: &str, role: &str) -> String {
    let b = derived_bytes(board, role);
    format!(
        "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]),
        u16::from_be_bytes([b[8], b[9]]),
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]])
    )
}

/// 16 bytes derived from `board` and `role` (FNV-1a 64 twice, finished with SplitMix64), with the
/// version-4 and RFC 4122 variant bits set.
pub(crate) fn derived_bytes(board: &str, role: &str) -> [u8; 16] {
    let half = |salt: u8| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in [
            b"rtc-edge\0".as_slice(),
            &[salt],
            board.as_bytes(),
            b"\0",
            role.as_bytes(),
        ]
        .concat()
        {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // SplitMix64 finaliser: spreads FNV's weak low bits.
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (h ^ (h >> 31)).to_be_bytes()
    };
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&half(1));
    b[8..].copy_from_slice(&half(2));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    b
}

/// One partition as the image's GPT records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptEntry {
    /// 1-based index in the table.
    pub number: u32,
    /// The partition name.
    pub name: String,
    /// Partition type GUID, upper-case text.
    pub type_guid: String,
    /// Unique partition GUID, upper-case text.
    pub guid: String,
    /// First sector.
    pub first_lba: u64,
    /// Last sector (inclusive).
    pub last_lba: u64,
}

impl GptEntry {
    /// Byte offset in the image.
    pub fn offset(&self) -> u64 {
        self.first_lba * SECTOR
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        (self.last_lba + 1 - self.first_lba) * SECTOR
    }
}

/// The primary GPT of an image: disk GUID and the used entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpt {
    /// Disk GUID, upper-case text.
    pub disk_guid: String,
    /// Used entries in table order.
    pub entries: Vec<GptEntry>,
}

impl Gpt {
    /// Reads the primary GPT of the image file at `image`.
    pub fn read(image: &Path) -> Result<Self, Error> {
        let mut f = File::open(image).map_err(|e| Error::io("read GPT", image, e))?;
        let mut head = vec![0u8; 34 * SECTOR_LEN];
        f.read_exact(&mut head)
            .map_err(|e| Error::io("read GPT", image, e))?;
        Self::parse(&head).map_err(|m| Error::Other(format!("{}: {m}", image.display())))
    }

    /// Parses the first 34 sectors of a disk (protective MBR, GPT header, 128 entries).
    pub fn parse(head: &[u8]) -> Result<Self, String> {
        let hdr = head
            .get(SECTOR_LEN..2 * SECTOR_LEN)
            .ok_or("too short for a GPT header")?;
        if &hdr[..8] != b"EFI PART" {
            return Err("no GPT header at LBA 1".into());
        }
        let le32 = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let le64 = |b: &[u8], at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(a)
        };
        let entries_lba = le64(hdr, 72);
        let count = le32(hdr, 80);
        let size = le32(hdr, 84) as usize;
        if entries_lba != 2 || size < 128 {
            return Err(format!(
                "unexpected GPT entry array (LBA {entries_lba}, entry size {size})"
            ));
        }
        let mut entries = Vec::new();
        for i in 0..count as usize {
            let at = 2 * SECTOR_LEN + i * size;
            let Some(e) = head.get(at..at + 128) else { break };
            if e[..16].iter().all(|&b| b == 0) {
                continue;
            }
            let name: Vec<u16> = e[56..128]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&c| c != 0)
                .collect();
            entries.push(GptEntry {
                number: u32::try_from(i + 1).map_err(|_| "too many entries")?,
                name: String::from_utf16_lossy(&name),
                type_guid: guid_text(&e[..16]),
                guid: guid_text(&e[16..32]),
                first_lba: le64(e, 32),
                last_lba: le64(e, 40),
            });
        }
        Ok(Self {
            disk_guid: guid_text(&hdr[56..72]),
            entries,
        })
    }

    /// The entry named like `p`.
    pub fn find(&self, p: Partition) -> Option<&GptEntry> {
        self.entries.iter().find(|e| e.name == p.name())
    }
}

/// GPT stores the first three GUID fields little-endian.
fn guid_text(b: &[u8]) -> String {
    format!(
        "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

/// Byte offset and size of partition `p` in the image file, from its GPT.
pub fn partition_span(image: &Path, p: Partition) -> Result<(u64, u64), Error> {
    let gpt = Gpt::read(image)?;
    let e = gpt
        .find(p)
        .ok_or_else(|| Error::Other(format!("{}: no partition named {p} in the GPT", image.display())))?;
    Ok((e.offset(), e.size()))
}

/// Writes `data` into partition `p` of the image file at `image` (found by name in its GPT) and zeroes
/// the rest of the partition. Refuses data larger than the partition.
pub fn write_partition(image: &Path, p: Partition, data: &[u8]) -> Result<(), Error> {
    let (offset, size) = partition_span(image, p)?;
    let len = data.len() as u64;
    if len > size {
        return Err(Error::Other(format!(
            "{}: {} bytes do not fit partition {p} ({} bytes)",
            image.display(),
            len,
            size
        )));
    }
    let step = "write partition";
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(image)
        .map_err(|e| Error::io(step, image, e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(step, image, e))?;
    f.write_all(data).map_err(|e| Error::io(step, image, e))?;
    let zeros = vec![0u8; MIB_LEN];
    let mut left = size - len;
    while left > 0 {
        let n = left.min(MIB);
        f.write_all(&zeros[..n as usize])
            .map_err(|e| Error::io(step, image, e))?;
        left -= n;
    }
    f.sync_all().map_err(|e| Error::io(step, image, e))
}

/// Reads the whole of partition `p` of the image file at `image`.
pub fn read_partition(image: &Path, p: Partition) -> Result<Vec<u8>, Error> {
    let (offset, size) = partition_span(image, p)?;
    let mut f = File::open(image).map_err(|e| Error::io("read partition", image, e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io("read partition", image, e))?;
    let mut buf = vec![0u8; usize::try_from(size).map_err(|_| Error::Other("partition too large".into()))?];
    f.read_exact(&mut buf)
        .map_err(|e| Error::io("read partition", image, e))?;
    Ok(buf)
}

/// Copies the file `src` into the (new, sparse) image at `offset`, leaving all-zero MiB blocks unwritten.
pub(crate) fn place(image: &mut File, offset: u64, src: &Path) -> Result<u64, Error> {
    let step = "place partition";
    let mut input = File::open(src).map_err(|e| Error::io(step, src, e))?;
    let mut buf = vec![0u8; MIB_LEN];
    let mut at = offset;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = input
                .read(&mut buf[filled..])
                .map_err(|e| Error::io(step, src, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        if buf[..filled].iter().any(|&b| b != 0) {
            image
                .seek(SeekFrom::Start(at))
                .map_err(|e| Error::io(step, src, e))?;
            image
                .write_all(&buf[..filled])
                .map_err(|e| Error::io(step, src, e))?;
        }
        at += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    Ok(at - offset)
}

/// `mkfs.vfat` arguments for an ESP of `mib` MiB: FAT16 below 64 MiB (FAT32 needs at least 65525
/// clusters, which 512-byte sectors only reach from about 33 MiB, and UEFI reads FAT16 as well), FAT32
/// from 64 MiB, with the smallest cluster that keeps the cluster count in the FAT type's range.
pub fn fat_params(mib: u32) -> (u8, u32) {
    let sectors = u64::from(mib) * MIB / SECTOR;
    if mib >= 64 {
        return (32, 1);
    }
    let mut per_cluster = 1u32;
    while sectors / u64::from(per_cluster) > 65_524 {
        per_cluster *= 2;
    }
    (16, per_cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(esp: u32, slot: u32, data: u32) -> Partitions {
        Partitions {
            esp_mib: esp,
            slot_mib: slot,
            data_mib: data,
        }
    }

    #[test]
    fn layout_is_back_to_back_after_one_mib() {
        let l = Layout::new(&parts(8, 20, 12));
        assert_eq!(l.offset(Partition::Esp), MIB);
        assert_eq!(l.offset(Partition::SlotA), 9 * MIB);
        assert_eq!(l.offset(Partition::SlotB), 29 * MIB);
        assert_eq!(l.offset(Partition::Data), 49 * MIB);
        assert_eq!(l.size(Partition::SlotB), 20 * MIB);
        assert_eq!(l.size(Partition::Data), 12 * MIB);
        assert_eq!(l.total_bytes(), 62 * MIB);
        assert_eq!(parts(8, 20, 12).total_mib(), 62);
    }

    #[test]
    fn sfdisk_script_has_sectors_names_and_derived_guids() {
        let s = Layout::new(&parts(8, 20, 12)).sfdisk_script("qemu-x86_64");
        assert!(s.starts_with("label: gpt\nlabel-id: "), "{s}");
        assert!(
            s.contains(&format!("start=2048, size=16384, type={TYPE_ESP}, uuid=")),
            "{s}"
        );
        assert!(s.contains("start=18432, size=40960, type=0FC63DAF"), "{s}");
        assert!(s.contains("start=100352, size=24576, type=0FC63DAF"), "{s}");
        assert!(s.contains(&format!(
            ", uuid={}, name=slotB\n",
            derived_guid("qemu-x86_64", "slotB")
        )));
        assert_eq!(s.lines().count(), 9);
    }

    #[test]
    fn derived_guids_are_stable_distinct_and_version_4() {
        let a = derived_guid("qemu-x86_64", "disk");
        assert_eq!(a, derived_guid("qemu-x86_64", "disk"));
        assert_ne!(a, derived_guid("qemu-aarch64", "disk"));
        assert_ne!(a, derived_guid("qemu-x86_64", "esp"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4", "{a}");
        assert!("89AB".contains(&a[19..20]), "{a}");
    }

    #[test]
    fn partition_names_round_trip() {
        for p in Partition::ALL {
            assert_eq!(p.name().parse::<Partition>(), Ok(p));
        }
        assert!("slotC".parse::<Partition>().is_err());
        assert_eq!(Partition::slot('B'), Some(Partition::SlotB));
    }

    /// A hand-made GPT head: one ESP entry.
    fn gpt_head() -> Vec<u8> {
        let mut head = vec![0u8; 34 * 512];
        let hdr = &mut head[512..1024];
        hdr[..8].copy_from_slice(b"EFI PART");
        hdr[56..72].copy_from_slice(&[
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 1, 2, 3, 4, 5, 6,
        ]);
        hdr[72..80].copy_from_slice(&2u64.to_le_bytes());
        hdr[80..84].copy_from_slice(&128u32.to_le_bytes());
        hdr[84..88].copy_from_slice(&128u32.to_le_bytes());
        let e = &mut head[1024..1152];
        // C12A7328-F81F-11D2-BA4B-00A0C93EC93B, mixed-endian.
        e[..16].copy_from_slice(&[
            0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B,
        ]);
        e[16] = 1;
        e[32..40].copy_from_slice(&2048u64.to_le_bytes());
        e[40..48].copy_from_slice(&18431u64.to_le_bytes());
        for (i, c) in "esp".encode_utf16().enumerate() {
            e[56 + 2 * i..58 + 2 * i].copy_from_slice(&c.to_le_bytes());
        }
        head
    }

    #[test]
    fn gpt_parse_reads_names_guids_and_extents() {
        let g = Gpt::parse(&gpt_head()).unwrap();
        assert_eq!(g.disk_guid, "00112233-4455-6677-8899-010203040506");
        assert_eq!(g.entries.len(), 1);
        let e = g.find(Partition::Esp).unwrap();
        assert_eq!(e.type_guid, TYPE_ESP);
        assert_eq!(e.offset(), MIB);
        assert_eq!(e.size(), 8 * MIB);
        assert_eq!(e.number, 1);
        assert!(g.find(Partition::Data).is_none());
        assert!(Gpt::parse(&[0u8; 34 * 512]).is_err());
    }

    #[test]
    fn fat_type_and_cluster_size_follow_the_esp_size() {
        assert_eq!(fat_params(8), (16, 1));
        assert_eq!(fat_params(16), (16, 1));
        assert_eq!(fat_params(32), (16, 2));
        assert_eq!(fat_params(63), (16, 2));
        assert_eq!(fat_params(64), (32, 1));
        for mib in 8..64 {
            let (_, spc) = fat_params(mib);
            let clusters = u64::from(mib) * 2048 / u64::from(spc);
            assert!(
                (4085..=65_524).contains(&clusters),
                "{mib} MiB: {clusters} clusters"
            );
        }
    }
}
