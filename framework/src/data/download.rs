//! `--download`: fetches a dataset's canonical files into the data folder, checks their
//! published MD5 and, for CIFAR, extracts the archive.
//!
//! Every file is written to `<name>.part` first and renamed only once its checksum matched,
//! so an interrupted or corrupted download never leaves a file that looks complete. Files
//! already present with the right checksum are not fetched again.
//!
//! The checksums are the ones published by the dataset authors (CIFAR page) and used by
//! torchvision (MNIST, Fashion-MNIST, SVHN); the sizes are informative only.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use md5::{Digest, Md5};

use super::bounded::{Capped, MARGIN};
use super::locate::corrupt;
use super::DatasetKind;
use crate::{Error, Result};

/// One file to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFile {
    pub url: &'static str,
    /// Path of the downloaded file, relative to the data folder.
    pub path: &'static str,
    /// Published MD5 (lower-case hex).
    pub md5: &'static str,
    /// Size in bytes, to tell the user what is coming; `None` where not known for certain.
    pub size: Option<u64>,
    /// A `.tar.gz` to extract into the data folder once verified: the size of its canonical
    /// contents (the data files, from the dataset's record layout), which bounds how far its
    /// tar stream is inflated.
    pub extract: Option<u64>,
}

const MNIST: [RemoteFile; 4] = [
    RemoteFile {
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        path: "MNIST/raw/train-images-idx3-ubyte.gz",
        md5: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        size: None,
        extract: None,
    },
    RemoteFile {
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
        path: "MNIST/raw/train-labels-idx1-ubyte.gz",
        md5: "d53e105ee54ea40749a09fcbcd1e9432",
        size: None,
        extract: None,
    },
    RemoteFile {
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
        path: "MNIST/raw/t10k-images-idx3-ubyte.gz",
        md5: "9fb629c4189551a2d022fa330f9573f3",
        size: None,
        extract: None,
    },
    RemoteFile {
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
        path: "MNIST/raw/t10k-labels-idx1-ubyte.gz",
        md5: "ec29112dd5afa0611ce80d1b7f02629c",
        size: None,
        extract: None,
    },
];

// Note: Debian's dataset-fashion-mnist package ships recompressed .gz files whose MD5 differs
// from these; the loader does not check checksums, only --download does.
const FASHION_MNIST: [RemoteFile; 4] = [
    RemoteFile {
        url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz",
        path: "FashionMNIST/raw/train-images-idx3-ubyte.gz",
        md5: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        size: None,
        extract: None,
    },
    RemoteFile {
        url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-labels-idx1-ubyte.gz",
        path: "FashionMNIST/raw/train-labels-idx1-ubyte.gz",
        md5: "25c81989df183df01b3e8a0aad5dffbe",
        size: None,
        extract: None,
    },
    RemoteFile {
        url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-images-idx3-ubyte.gz",
        path: "FashionMNIST/raw/t10k-images-idx3-ubyte.gz",
        md5: "bef4ecab320f06d8554ea6380940ec79",
        size: None,
        extract: None,
    },
    RemoteFile {
        url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz",
        path: "FashionMNIST/raw/t10k-labels-idx1-ubyte.gz",
        md5: "bb300cfdad3c16e7a12a480ee83cd310",
        size: None,
        extract: None,
    },
];

/// `data_batch_{1..5}.bin` and `test_batch.bin`: 6 x 10,000 records of 1 label byte and
/// 3 x 32 x 32 pixels. The readme and label-name files beside them, and the tar headers, are a
/// few KB that the extraction margin covers.
const CIFAR10_CONTENTS: u64 = 6 * 10_000 * (1 + 3072);
/// `train.bin` (50,000) and `test.bin` (10,000) records of 2 label bytes and 3 x 32 x 32
/// pixels, plus the label-name files (as above).
const CIFAR100_CONTENTS: u64 = 60_000 * (2 + 3072);

const CIFAR10: [RemoteFile; 1] = [RemoteFile {
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    path: "cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    size: Some(170_052_171),
    extract: Some(CIFAR10_CONTENTS),
}];

const CIFAR100: [RemoteFile; 1] = [RemoteFile {
    url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    path: "cifar-100-binary.tar.gz",
    md5: "03b5dce01913d631647c71ecec9e9cb8",
    size: Some(168_513_733),
    extract: Some(CIFAR100_CONTENTS),
}];

const SVHN: [RemoteFile; 2] = [
    RemoteFile {
        url: "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
        path: "train_32x32.mat",
        md5: "e26dedcc434d2e4c54c9b2d4a06d8373",
        size: Some(182_040_794),
        extract: None,
    },
    RemoteFile {
        url: "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
        path: "test_32x32.mat",
        md5: "eb5a983be6a315427106f1b164d9cef3",
        size: Some(64_275_384),
        extract: None,
    },
];

/// The files `--download` fetches for `kind` (none for `shapes`).
pub fn remote_files(kind: DatasetKind) -> &'static [RemoteFile] {
    match kind {
        DatasetKind::Shapes => &[],
        DatasetKind::Mnist => &MNIST,
        DatasetKind::FashionMnist => &FASHION_MNIST,
        DatasetKind::Cifar10 => &CIFAR10,
        DatasetKind::Cifar100 => &CIFAR100,
        DatasetKind::Svhn => &SVHN,
    }
}

/// Lower-case hex MD5 of the file at `path`, read in 1 MiB blocks.
pub fn md5_file(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut reader = BufReader::new(file);
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks that the file at `path` has MD5 `expected` (hex, any case); a mismatch is
/// `Error::DatasetCorrupt` giving both values.
pub fn verify_checksum(path: &Path, expected: &str) -> Result<()> {
    let found = md5_file(path)?;
    if found.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(corrupt(
            path,
            format!("MD5 checksum mismatch: expected {expected}, found {found}; delete the file and download it again"),
        ))
    }
}

/// Extracts the `.tar.gz` at `archive` into `dest`. The `tar` crate refuses entries that would
/// land outside `dest` (absolute paths, `..`). The archive's contents should come to
/// `contents_size` bytes; inflating stops with an error a margin past that, so a damaged or
/// crafted archive cannot fill the disk.
pub fn extract_tar_gz(archive: &Path, dest: &Path, contents_size: u64) -> Result<()> {
    let file = File::open(archive).map_err(|e| Error::io(format!("opening {}", archive.display()), e))?;
    std::fs::create_dir_all(dest).map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
    let cap = contents_size.saturating_add(MARGIN);
    let mut stream = Capped::new(GzDecoder::new(BufReader::new(file)), cap);
    let unpacked = tar::Archive::new(&mut stream).unpack(dest);
    if stream.overran() {
        return Err(corrupt(
            archive,
            format!(
                "the archive inflates past {cap} bytes while its contents should come to \
                 {contents_size} bytes; it is damaged or was made to fill the disk: delete it (and \
                 what was extracted from it in {}) and download it again",
                dest.display()
            ),
        ));
    }
    unpacked.map_err(|e| corrupt(archive, format!("cannot extract the tar.gz archive: {e}")))
}

/// Fetches `url` into `dest` through `<dest>.part`, verifying the MD5 before the rename.
fn fetch(kind: DatasetKind, file: &RemoteFile, dest: &Path) -> Result<()> {
    let mut part = dest.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let unreachable = |e: String| Error::DatasetMissing {
        dataset: kind.name().to_string(),
        message: format!(
            "downloading {} failed: {e}. Without internet access, fetch it elsewhere and put it \
             at {}",
            file.url,
            dest.display()
        ),
    };
    let response = ureq::get(file.url).call().map_err(|e| unreachable(e.to_string()))?;
    let mut reader = response.into_reader();
    let mut out = File::create(&part).map_err(|e| Error::io(format!("creating {}", part.display()), e))?;
    std::io::copy(&mut reader, &mut out).map_err(|e| unreachable(e.to_string()))?;
    out.flush()
        .map_err(|e| Error::io(format!("writing {}", part.display()), e))?;
    drop(out);
    if let Err(e) = verify_checksum(&part, file.md5) {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, dest).map_err(|e| Error::io(format!("renaming {} to {}", part.display(), dest.display()), e))
}

/// Downloads (and extracts) every file of `kind` into `data_dir`, in the layout the loaders
/// search: `MNIST/raw/`, `FashionMNIST/raw/`, `cifar-10-batches-bin/`, `cifar-100-binary/`,
/// and the SVHN `.mat` files directly in `data_dir`.
pub fn download(kind: DatasetKind, data_dir: &Path) -> Result<()> {
    for file in remote_files(kind) {
        let dest = data_dir.join(file.path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        let present = dest.is_file() && verify_checksum(&dest, file.md5).is_ok();
        if !present {
            let size = file
                .size
                .map_or(String::new(), |s| format!(" ({:.0} MB)", s as f64 / 1e6));
            eprintln!("downloading {}{size} to {}", file.url, dest.display());
            fetch(kind, file, &dest)?;
        }
        if let Some(contents_size) = file.extract {
            extract_tar_gz(&dest, data_dir, contents_size)?;
        }
    }
    Ok(())
}
