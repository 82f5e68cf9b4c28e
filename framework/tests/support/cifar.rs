//! CIFAR fixtures: binary records and a CIFAR-10 batch folder.

use std::path::Path;

use super::data::write;

/// One CIFAR record: label byte(s) then 3072 pixels, pixel k of record `i` = f(i, k).
pub fn cifar_record(labels: &[u8], i: usize) -> Vec<u8> {
    let mut r = labels.to_vec();
    r.extend((0..3072).map(|k| cifar_pixel(i, k)));
    r
}

pub fn cifar_pixel(i: usize, k: usize) -> u8 {
    ((i * 53 + k * 7 + k / 1024 * 19) % 256) as u8
}

/// Writes CIFAR-10 batches of two records each into `dir`; returns the train labels.
pub fn write_cifar10(dir: &Path) -> Vec<u32> {
    let mut labels = Vec::new();
    for b in 1..=5 {
        let mut bytes = Vec::new();
        for r in 0..2 {
            let i = (b - 1) * 2 + r;
            let label = (i * 3 % 10) as u8;
            labels.push(label as u32);
            bytes.extend(cifar_record(&[label], i));
        }
        write(&dir.join(format!("data_batch_{b}.bin")), &bytes);
    }
    let mut test = cifar_record(&[9], 100);
    test.extend(cifar_record(&[0], 101));
    write(&dir.join("test_batch.bin"), &test);
    labels
}
