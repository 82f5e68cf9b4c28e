//! MAT v5 fixtures: a small MAT-file writer (little- or big-endian, plain or miCOMPRESSED)
//! and the SVHN files made with it.

use std::path::Path;

use super::data::{write, zlib};

/// Column-major X(h, w, c, n) value of the SVHN fixture.
pub fn svhn_pixel(h: usize, w: usize, c: usize, n: usize) -> u8 {
    ((h * 7 + w * 13 + c * 50 + n * 31) % 256) as u8
}

/// A minimal MAT v5 writer: enough to produce the files MATLAB writes for SVHN.
pub struct Mat {
    pub big_endian: bool,
}

impl Mat {
    pub fn u32(&self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    /// A data element; small format when `data` fits in 4 bytes and `small` is allowed.
    pub fn element(&self, data_type: u32, data: &[u8], small: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if small && data.len() <= 4 {
            out.extend_from_slice(&self.u32(data_type | ((data.len() as u32) << 16)));
            let mut d = data.to_vec();
            d.resize(4, 0);
            out.extend_from_slice(&d);
            return out;
        }
        out.extend_from_slice(&self.u32(data_type));
        out.extend_from_slice(&self.u32(data.len() as u32));
        out.extend_from_slice(data);
        while out.len() % 8 != 0 {
            out.push(0);
        }
        out
    }

    /// An miMATRIX element for a real numeric array of MATLAB `class` with values stored as
    /// `data_type` (`values` already encoded).
    pub fn matrix(&self, name: &str, class: u8, dims: &[u32], data_type: u32, values: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut flags = self.u32(u32::from(class)).to_vec();
        flags.extend_from_slice(&self.u32(0));
        body.extend(self.element(6, &flags, false));
        let dims_bytes: Vec<u8> = dims.iter().flat_map(|&d| self.u32(d)).collect();
        body.extend(self.element(5, &dims_bytes, false));
        body.extend(self.element(1, name.as_bytes(), true));
        body.extend(self.element(data_type, values, true));
        self.element(14, &body, false)
    }

    pub fn file(&self, elements: &[Vec<u8>], compress: bool) -> Vec<u8> {
        let mut out = b"MATLAB 5.0 MAT-file, Platform: cafe-lab test fixture".to_vec();
        out.resize(116, b' ');
        out.extend_from_slice(&[0; 8]);
        if self.big_endian {
            out.extend_from_slice(&[0x01, 0x00]);
            out.extend_from_slice(b"MI");
        } else {
            out.extend_from_slice(&[0x00, 0x01]);
            out.extend_from_slice(b"IM");
        }
        for e in elements {
            if compress {
                let z = zlib(e);
                out.extend_from_slice(&self.u32(15));
                out.extend_from_slice(&self.u32(z.len() as u32));
                out.extend_from_slice(&z);
            } else {
                out.extend_from_slice(e);
            }
        }
        out
    }

    pub fn f64s(&self, values: &[f64]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|v| {
                if self.big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            })
            .collect()
    }
}

/// The SVHN fixture's X (uint8, 32x32x3xN, column-major) as a MAT element.
pub fn svhn_x(mat: &Mat, n: usize) -> Vec<u8> {
    let mut x = vec![0u8; 3072 * n];
    for ni in 0..n {
        for c in 0..3 {
            for w in 0..32 {
                for h in 0..32 {
                    x[h + 32 * w + 1024 * c + 3072 * ni] = svhn_pixel(h, w, c, ni);
                }
            }
        }
    }
    mat.matrix("X", 9, &[32, 32, 3, n as u32], 2, &x)
}

/// `y` as doubles (class double, stored miDOUBLE).
pub fn svhn_y_double(mat: &Mat, labels: &[f64]) -> Vec<u8> {
    mat.matrix("y", 6, &[labels.len() as u32, 1], 9, &mat.f64s(labels))
}

/// `y` as MATLAB writes small-integer doubles: class double, stored as miUINT8.
pub fn svhn_y_u8(mat: &Mat, labels: &[u8]) -> Vec<u8> {
    mat.matrix("y", 6, &[labels.len() as u32, 1], 2, labels)
}

// ---------------------------------------------------------------------------------------------

pub fn write_svhn(dir: &Path, mat: &Mat, compress: bool) {
    // Train: labels as doubles with 10 (= digit 0); test: stored as uint8, in a file where y
    // comes before X.
    let train = mat.file(&[svhn_x(mat, 3), svhn_y_double(mat, &[10.0, 1.0, 9.0])], compress);
    let test = mat.file(&[svhn_y_u8(mat, &[10, 4]), svhn_x(mat, 2)], compress);
    write(&dir.join("train_32x32.mat"), &train);
    write(&dir.join("test_32x32.mat"), &test);
}
