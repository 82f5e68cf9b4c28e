//! Writing results: atomic file writes, JSON, and the synthetic set as a PNG grid.

use std::io::Write;
use std::path::Path;

use candle_core::Tensor;
use serde::Serialize;

use crate::data::Dataset;
use crate::{Error, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, then
/// renamed over the target, so a crash never leaves a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating folder {}", dir.display()), e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let ctx = |what: &str| format!("{what} {}", tmp.display());
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(ctx("creating"), e))?;
    f.write_all(bytes).map_err(|e| Error::io(ctx("writing"), e))?;
    f.sync_all().map_err(|e| Error::io(ctx("syncing"), e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming {} to {}", tmp.display(), path.display()), e))
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Other(format!("serialising {}: {e}", path.display())))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Renders images `[N, C, H, W]` of `dataset` as an RGB grid with `columns` images per row
/// (one row per class when `columns` = ipc), undoing its normalisation (and its whitening:
/// what distill.py shows of a ZCA run, `distill.py:266-268`).
pub fn image_grid(images: &Tensor, dataset: &Dataset, columns: usize) -> Result<image::RgbImage> {
    let (n, c, h, w) = images.dims4()?;
    let data = dataset.denormalise(
        &images
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?,
    );
    let columns = columns.max(1);
    let rows = n.div_ceil(columns);
    let gap = 2;
    let width = columns * (w + gap) + gap;
    let height = rows * (h + gap) + gap;
    let mut grid = image::RgbImage::from_pixel(width as u32, height as u32, image::Rgb([255, 255, 255]));
    for i in 0..n {
        let (gx, gy) = (gap + (i % columns) * (w + gap), gap + (i / columns) * (h + gap));
        for y in 0..h {
            for x in 0..w {
                let mut px = [0u8; 3];
                for (k, p) in px.iter_mut().enumerate() {
                    let ch = if c == 1 { 0 } else { k.min(c - 1) };
                    let v = data[((i * c + ch) * h + y) * w + x];
                    *p = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
                grid.put_pixel((gx + x) as u32, (gy + y) as u32, image::Rgb(px));
            }
        }
    }
    Ok(grid)
}

/// Encodes an RGB image as PNG bytes.
pub fn png_bytes(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| Error::Other(format!("encoding PNG: {e}")))?;
    Ok(bytes)
}

/// Saves the grid of `images` as a PNG, atomically, scaled up so small images stay visible.
pub fn save_grid_png(path: &Path, images: &Tensor, dataset: &Dataset, columns: usize) -> Result<()> {
    let grid = image_grid(images, dataset, columns)?;
    let scale = if grid.width() < 400 { 4 } else { 2 };
    let big = image::imageops::resize(
        &grid,
        grid.width() * scale,
        grid.height() * scale,
        image::imageops::FilterType::Nearest,
    );
    write_atomic(path, &png_bytes(&big)?)
}
