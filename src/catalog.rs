//! Catalogs: which tracks a run covers and where their stems go, which shard owns a track, and
//! whether a track's delivered stems are still current (resume).
//!
//! A folder given as input is a catalog root: its audio files are found recursively and their
//! stems are written under the output folder at the same relative folder
//! (`CATALOG/album/disc 1/track.flac` → `OUT/album/disc 1/track_drums_48k24b.wav`). A file given
//! by name has its stems written in the output folder itself.
//!
//! After a track's stems are in place a small record is written beside them,
//! `.{track}.stemkit.json` (hidden; written atomically, last), holding the input's fingerprint,
//! the parameters, and each stem file's size. A later run skips the track while that record
//! matches; a run killed at any moment leaves either no record (the track is redone; its stems
//! are replaced atomically) or a complete one.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One track of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The input file.
    pub input: PathBuf,
    /// Its path relative to its catalog root (the file name for a file given by name); sharding
    /// hashes this.
    pub rel: PathBuf,
    /// The folder its stems go to.
    pub out_dir: PathBuf,
}

impl CatalogEntry {
    /// `rel` with `/` separators, as reports and the shard hash use it.
    pub fn rel_text(&self) -> String {
        rel_text(&self.rel)
    }
}

/// A relative path with `/` separators (lossy for names that are not UTF-8).
pub fn rel_text(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Expands files and folders into tracks, mirroring each folder's layout under `out_dir`. Files
/// named explicitly are always taken (their content decides); inside folders audio is recognised
/// by extension or content, hidden files and folders and the output folder are skipped, and the
/// order is sorted.
pub fn collect(inputs: &[PathBuf], out_dir: &Path) -> Vec<CatalogEntry> {
    let out_canon = out_dir.canonicalize().ok();
    let mut entries = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut files = Vec::new();
            walk(input, out_canon.as_deref(), &mut files);
            for file in files {
                let rel = file
                    .strip_prefix(input)
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|_| file.file_name().map(PathBuf::from).unwrap_or_default());
                let out = match rel.parent() {
                    Some(parent) => out_dir.join(parent),
                    None => out_dir.to_path_buf(),
                };
                entries.push(CatalogEntry {
                    input: file,
                    rel,
                    out_dir: out,
                });
            }
        } else {
            entries.push(CatalogEntry {
                rel: input
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| input.clone()),
                input: input.clone(),
                out_dir: out_dir.to_path_buf(),
            });
        }
    }
    entries
}

fn walk(dir: &Path, skip: Option<&Path>, files: &mut Vec<PathBuf>) {
    if skip.is_some() && dir.canonicalize().ok().as_deref() == skip {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        files.push(dir.to_path_buf()); // reported as unreadable when opened
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, skip, files);
        } else if crate::audio::decode::looks_like_audio(&p) {
            files.push(p);
        }
    }
}

/// 64-bit FNV-1a: a stable hash (the same on every machine and release), for shards and
/// fingerprints; not a cryptographic one.
pub fn fnv1a64(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(seed, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// FNV-1a's offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Which of `n` shards owns the track at catalog-relative path `rel` (`/` separators).
pub fn shard_of(rel: &str, n: usize) -> usize {
    (fnv1a64(rel.as_bytes(), FNV_OFFSET) % n.max(1) as u64) as usize
}

/// `--shard K/N`: shard K (0-based) of N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 0-based.
    pub index: usize,
    /// Shards in all.
    pub count: usize,
}

impl Shard {
    /// Parses `K/N` with 0 ≤ K < N.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] otherwise.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::param(
                "--shard",
                format!("expected K/N with 0 <= K < N (0-based), got {text:?}"),
            )
        };
        let (k, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether this shard owns `entry`.
    pub fn owns(&self, entry: &CatalogEntry) -> bool {
        shard_of(&entry.rel_text(), self.count) == self.index
    }
}

/// What identifies an input's content cheaply: its size, modification time and a hash of its
/// first and last MiB (a changed file almost always changes one of them; reading only 2 MiB keeps
/// a rerun of a finished catalog at seconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (0 where the filesystem has none).
    pub mtime_ns: u128,
    /// FNV-1a of the first and last MiB, hex.
    pub hash: String,
}

/// Bytes hashed at each end of a file for its [`Fingerprint`].
const FINGERPRINT_SPAN: u64 = 1 << 20;

/// The fingerprint of `path`.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read.
pub fn fingerprint(path: &Path) -> Result<Fingerprint> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    let size = meta.len();
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut buf = vec![0u8; FINGERPRINT_SPAN.min(size) as usize];
    file.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
    let mut h = fnv1a64(&buf, FNV_OFFSET);
    if size > FINGERPRINT_SPAN {
        let tail = FINGERPRINT_SPAN.min(size - FINGERPRINT_SPAN);
        file.seek(SeekFrom::End(-(tail as i64)))
            .map_err(|e| Error::io(path, e))?;
        buf.resize(tail as usize, 0);
        file.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
        h = fnv1a64(&buf, h);
    }
    h = fnv1a64(&size.to_le_bytes(), h);
    Ok(Fingerprint {
        size,
        mtime_ns,
        hash: format!("{h:016x}"),
    })
}

/// One delivered file in a [`DoneRecord`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoneFile {
    /// File name, in the record's folder.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// The record of a finished track, written beside its stems.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DoneRecord {
    /// Catalog-relative input path.
    pub input: String,
    /// The input's fingerprint when it was separated.
    pub fingerprint: Fingerprint,
    /// Everything that decides the output: stemkit's version, separation and delivery settings.
    pub settings: serde_json::Value,
    /// The delivered stems.
    pub files: Vec<DoneFile>,
}

/// Where the done record of the track named `track` lives in `out_dir`.
pub fn record_path(out_dir: &Path, track: &str) -> PathBuf {
    out_dir.join(format!(".{track}.stemkit.json"))
}

/// Why a track must be (re)done, or `None` when its record in `out_dir` matches `fingerprint`
/// and `settings` and every file it lists is there at its recorded size.
pub fn stale_reason(
    out_dir: &Path,
    track: &str,
    fingerprint: &Fingerprint,
    settings: &serde_json::Value,
) -> Option<String> {
    let path = record_path(out_dir, track);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Some("not done yet".into());
    };
    let Ok(record) = serde_json::from_str::<DoneRecord>(&text) else {
        return Some("its done record is unreadable".into());
    };
    if &record.fingerprint != fingerprint {
        return Some("the input changed".into());
    }
    if &record.settings != settings {
        return Some("the settings changed".into());
    }
    for f in &record.files {
        match std::fs::metadata(out_dir.join(&f.name)) {
            Ok(m) if m.len() == f.bytes => {}
            Ok(_) => return Some(format!("{} changed size", f.name)),
            Err(_) => return Some(format!("{} is missing", f.name)),
        }
    }
    None
}

/// Writes the done record (atomically: a temporary sibling renamed into place).
///
/// # Errors
/// [`Error::Io`] when it cannot be written.
pub fn write_record(out_dir: &Path, track: &str, record: &DoneRecord) -> Result<()> {
    crate::batch::write_json_atomic(&record_path(out_dir, track), record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_and_are_stable() {
        let names: Vec<String> = (0..500)
            .map(|i| format!("album {}/träck {i}.flac", i % 7))
            .collect();
        for n in [1usize, 2, 3, 7] {
            let mut counts = vec![0usize; n];
            for name in &names {
                counts[shard_of(name, n)] += 1;
            }
            assert_eq!(counts.iter().sum::<usize>(), names.len());
            // Roughly even: every shard gets at least half its share.
            assert!(
                counts.iter().all(|&c| c * n * 2 >= names.len()),
                "{counts:?}"
            );
        }
        // The hash is fixed forever (shards of one catalog must agree across machines).
        assert_eq!(fnv1a64(b"a", FNV_OFFSET), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn shard_parsing() {
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 2, count: 3 });
        for bad in ["3/3", "1", "-1/2", "0/0", "a/b"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn collect_mirrors_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cat");
        std::fs::create_dir_all(root.join("al bum/disc 1")).unwrap();
        std::fs::create_dir_all(root.join(".hidden")).unwrap();
        for f in [
            "al bum/disc 1/-one.wav",
            "al bum/twö.flac",
            ".hidden/x.wav",
            "notes.txt",
        ] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let out = tmp.path().join("out");
        let e = collect(std::slice::from_ref(&root), &out);
        let got: Vec<(String, PathBuf)> = e
            .iter()
            .map(|e| (e.rel_text(), e.out_dir.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "al bum/disc 1/-one.wav".to_string(),
                    out.join("al bum/disc 1")
                ),
                ("al bum/twö.flac".to_string(), out.join("al bum")),
            ]
        );
    }

    #[test]
    fn fingerprints_see_changes_at_either_end() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f.bin");
        let mut data = vec![7u8; 3 << 20];
        std::fs::write(&p, &data).unwrap();
        let a = fingerprint(&p).unwrap();
        data[(3 << 20) - 5] = 8;
        std::fs::write(&p, &data).unwrap();
        let b = fingerprint(&p).unwrap();
        assert_ne!(a.hash, b.hash);
        assert_eq!(a.size, b.size);
    }
}
