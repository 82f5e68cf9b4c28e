//! Winograd's minimal filtering F(2x2, 3x3) for the 3x3 stride-1 correlations behind
//! [`super::conv::conv2d`]: the forward convolution and its input gradient (both are such a
//! correlation when the convolution has stride 1), and the weight gradient of the forward.
//!
//! A 2x2 block of outputs of a 3x3 correlation reads a 4x4 block `d` of input; with
//! `B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]`, `G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]`
//! and `A^T = [1 1 1 0; 0 1 -1 -1]` (Lavin & Gray, "Fast Algorithms for Convolutional Neural
//! Networks", CVPR 2016, eq. 7-8):
//!
//! `y[o] = A^T [ sum_c (G w[o, c] G^T) . (B^T d[c] B) ] A`
//!
//! so the sum over input channels becomes 16 independent matrix products (one per position of
//! the 4x4 transformed block), `M_xi [o, tiles] = U_xi [o, c] @ V_xi [c, tiles]`: 16 * 4 = 64
//! multiplications per 2x2 outputs instead of 4 * 9 = 36 *per pixel* (2.25x fewer). The weight
//! gradient is the adjoint of the same formula: `dU_xi = (A dy A^T)_xi @ V_xi^T` summed over
//! tiles, then `dw = G^T dU G`.
//!
//! Results equal the im2col path ([`super::conv_cpu`]) up to rounding (the transforms add and
//! halve; F(2x2, 3x3)'s points 0, +-1 keep the error within a few ulps of the direct sum). Every
//! value is computed in a fixed order that depends on the shapes alone, never on the thread
//! count, so a seeded run repeats bit for bit. The gradients of these ops are the ops of the
//! family again (see `conv.rs`), so second-order differentiation is unaffected.

use gemm::Parallelism;
use rayon::prelude::*;

use super::correlation::{Correlation, WEIGHT_GRAD_GROUPS};
use super::cpu_op::Elem;
use super::matmul::matmul;

/// Transformed positions per tile (a 4x4 block).
const POSITIONS: usize = 16;

/// Tiles per chunk of images: the transformed input and output of one chunk (16 x channels x
/// tiles each) stay within a few MiB, and each of the 16 products is still wide enough for
/// `gemm` to run at full speed.
const TILES_PER_CHUNK: usize = 512;

/// True when `geo` is a 3x3 correlation with stride 1 and no dilation: the ones Winograd
/// F(2x2, 3x3) computes.
pub(crate) fn applies(geo: &Correlation) -> bool {
    geo.k == 3 && geo.stride == 1 && geo.dilation == 1 && geo.out_h > 0 && geo.out_w > 0
}

/// The tiling of one correlation: `th x tw` tiles of 2x2 outputs per image, read from a
/// `(2 th + 2) x (2 tw + 2)` window of the input padded by `geo.pad`.
#[derive(Debug, Clone, Copy)]
struct Tiling {
    th: usize,
    tw: usize,
    /// Images per chunk.
    images: usize,
}

impl Tiling {
    fn new(geo: &Correlation) -> Self {
        let (th, tw) = (geo.out_h.div_ceil(2), geo.out_w.div_ceil(2));
        Self {
            th,
            tw,
            images: (TILES_PER_CHUNK / (th * tw)).max(1),
        }
    }

    fn per_image(&self) -> usize {
        self.th * self.tw
    }
}

/// `U[xi][o][c] = (G w[o, c] G^T)[xi]` for a `[out_c, in_c * 9]` kernel.
fn transform_kernel<T: Elem>(kernel: &[T], out_c: usize, in_c: usize) -> Vec<T> {
    let half = T::from_f64(0.5);
    let mut u = vec![T::ZERO; POSITIONS * out_c * in_c];
    for (oc, w) in kernel.chunks_exact(9).enumerate() {
        // Rows of G w (4 x 3), then (G w) G^T (4 x 4).
        let mut gw = [[T::ZERO; 3]; 4];
        for j in 0..3 {
            let (a, b, c) = (w[j], w[3 + j], w[6 + j]);
            gw[0][j] = a;
            gw[1][j] = (a + b + c) * half;
            gw[2][j] = (a - b + c) * half;
            gw[3][j] = c;
        }
        for (i, r) in gw.iter().enumerate() {
            let row = [r[0], (r[0] + r[1] + r[2]) * half, (r[0] - r[1] + r[2]) * half, r[2]];
            for (j, &v) in row.iter().enumerate() {
                u[(i * 4 + j) * out_c * in_c + oc] = v;
            }
        }
    }
    u
}

/// `dw[o, c] = G^T dU[o, c] G`, back to the `[out_c, in_c * 9]` kernel layout.
// `j` indexes a column of three rows at once, as the formula reads.
#[allow(clippy::needless_range_loop)]
fn untransform_kernel_grad<T: Elem>(du: &[T], out_c: usize, in_c: usize) -> Vec<T> {
    let half = T::from_f64(0.5);
    let plane = out_c * in_c;
    let mut dw = vec![T::ZERO; plane * 9];
    for (oc, out) in dw.chunks_exact_mut(9).enumerate() {
        let m = |i: usize, j: usize| du[(i * 4 + j) * plane + oc];
        // G^T m (3 x 4), then (G^T m) G (3 x 3); G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1].
        let mut gm = [[T::ZERO; 4]; 3];
        for j in 0..4 {
            let (a, b, c, d) = (m(0, j), m(1, j), m(2, j), m(3, j));
            gm[0][j] = a + (b + c) * half;
            gm[1][j] = (b - c) * half;
            gm[2][j] = (b + c) * half + d;
        }
        for (i, r) in gm.iter().enumerate() {
            out[i * 3] = r[0] + (r[1] + r[2]) * half;
            out[i * 3 + 1] = (r[1] - r[2]) * half;
            out[i * 3 + 2] = (r[1] + r[2]) * half + r[3];
        }
    }
    dw
}

/// Scratch space of one worker: one padded input plane split into its even and odd columns
/// (so that the tiles' column transform reads contiguous runs), rows combined by the row
/// transform, and the transformed blocks of a chunk.
struct Scratch<T> {
    line: Vec<T>,
    even: Vec<T>,
    odd: Vec<T>,
    rows: Vec<T>,
    v: Vec<T>,
    m: Vec<T>,
}

impl<T: Elem> Scratch<T> {
    fn new(geo: &Correlation, t: &Tiling, out_c: usize) -> Self {
        let tiles = t.images * t.per_image();
        let half = (2 * t.th + 2) * (t.tw + 1);
        Self {
            line: vec![T::ZERO; 2 * (t.tw + 1)],
            even: vec![T::ZERO; half],
            odd: vec![T::ZERO; half],
            rows: vec![T::ZERO; 8 * (t.tw + 1)],
            v: vec![T::ZERO; POSITIONS * geo.in_c * tiles],
            m: vec![T::ZERO; POSITIONS * out_c * tiles],
        }
    }
}

/// `dst[i] = f(a[i], b[i])`: a plain loop over equal-length runs, which the compiler vectorises.
#[inline(always)]
fn zip_with<T: Elem>(dst: &mut [T], a: &[T], b: &[T], f: impl Fn(T, T) -> T) {
    for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
        *d = f(a, b);
    }
}

/// One row of a window: `src` (`None`: a row of zero padding) shifted right by `pad`, cut or
/// zero-filled to `line.len()`, then split into its even and odd columns.
#[inline]
fn split_row<T: Elem>(src: Option<&[T]>, pad: isize, line: &mut [T], even: &mut [T], odd: &mut [T]) {
    line.fill(T::ZERO);
    if let Some(src) = src {
        // line[x] = src[x - pad] where both exist.
        let lo = pad.max(0) as usize;
        let skip = (-pad).max(0) as usize;
        let len = src.len().saturating_sub(skip).min(line.len().saturating_sub(lo));
        line[lo..lo + len].copy_from_slice(&src[skip..skip + len]);
    }
    for ((pair, e), o) in line.chunks_exact(2).zip(even).zip(odd) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// `V[xi][c][tile] = (B^T d B)[xi]` for every input channel and tile of the images `src`
/// (`[images, in_c, in_h, in_w]`); `tiles` is the row length of each `V[xi][c]`.
///
/// Vectorised along a row of tiles: the row transform combines whole window rows, and the
/// column transform of tile `tx` reads columns `2tx .. 2tx + 4` = even[tx], odd[tx],
/// even[tx + 1], odd[tx + 1] of the split plane.
fn transform_input<T: Elem>(geo: &Correlation, t: &Tiling, src: &[T], s: &mut Scratch<T>, tiles: usize) {
    let (tw, in_plane) = (t.tw, geo.in_h * geo.in_w);
    let half = tw + 1;
    let ph = 2 * t.th + 2;
    let Scratch {
        even,
        odd,
        line,
        rows,
        v,
        ..
    } = s;
    // Channel by channel, so that each of the 16 rows `V[xi][c]` is written front to back.
    for c in 0..geo.in_c {
        for (b, image) in src.chunks_exact(geo.in_len()).enumerate() {
            // The window the tiles read, zero outside the input, split by column parity.
            let chan = &image[c * in_plane..][..in_plane];
            for vy in 0..ph {
                let iy = vy as isize - geo.pad;
                let src_row = (iy >= 0 && iy < geo.in_h as isize).then(|| &chan[iy as usize * geo.in_w..][..geo.in_w]);
                split_row(
                    src_row,
                    geo.pad,
                    line,
                    &mut even[vy * half..][..half],
                    &mut odd[vy * half..][..half],
                );
            }
            for ty in 0..t.th {
                // B^T d along the window's rows, for the even and the odd columns:
                // e0 = d0 - d2, e1 = d1 + d2, e2 = d2 - d1, e3 = d1 - d3.
                for (parity, plane) in [&even[..], &odd[..]].into_iter().enumerate() {
                    let [d0, d1, d2, d3] = [0, 1, 2, 3].map(|r| &plane[(2 * ty + r) * half..][..half]);
                    let mut e = rows.chunks_exact_mut(half).skip(parity * 4);
                    zip_with(e.next().expect("row"), d0, d2, |a, b| a - b);
                    zip_with(e.next().expect("row"), d1, d2, |a, b| a + b);
                    zip_with(e.next().expect("row"), d2, d1, |a, b| a - b);
                    zip_with(e.next().expect("row"), d1, d3, |a, b| a - b);
                }
                let first = b * t.per_image() + ty * tw;
                for i in 0..4 {
                    let ev = &rows[i * half..][..half];
                    let od = &rows[(4 + i) * half..][..half];
                    let at = |j: usize| ((i * 4 + j) * geo.in_c + c) * tiles + first;
                    // ... then along columns: x0 - x2, x1 + x2, x2 - x1, x1 - x3.
                    zip_with(&mut v[at(0)..][..tw], &ev[..tw], &ev[1..], |a, b| a - b);
                    zip_with(&mut v[at(1)..][..tw], &od[..tw], &ev[1..], |a, b| a + b);
                    zip_with(&mut v[at(2)..][..tw], &ev[1..], &od[..tw], |a, b| a - b);
                    zip_with(&mut v[at(3)..][..tw], &od[..tw], &od[1..], |a, b| a - b);
                }
            }
        }
    }
}

/// `out[b, o] = A^T M[.][o][tile] A` (+ bias) for every tile of the `images` images of `out`
/// (`[images, out_c, out_h, out_w]`), vectorised along a row of tiles like [`transform_input`].
#[allow(clippy::too_many_arguments)]
fn transform_output<T: Elem>(
    geo: &Correlation,
    t: &Tiling,
    m: &[T],
    tiles: usize,
    rows: &mut [T],
    out: &mut [T],
    out_c: usize,
    bias: Option<&[T]>,
) {
    let (pixels, tw) = (geo.pixels(), t.tw);
    // Channel by channel, so that each of the 16 rows `M[xi][o]` is read front to back.
    for o in 0..out_c {
        for (b, image) in out.chunks_exact_mut(out_c * pixels).enumerate() {
            let plane = &mut image[o * pixels..][..pixels];
            let bias = bias.map_or(T::ZERO, |b| b[o]);
            for ty in 0..t.th {
                let first = b * t.per_image() + ty * tw;
                let at = |xi: usize| &m[(xi * out_c + o) * tiles + first..][..tw];
                // A^T m along rows: a0_j = m0j + m1j + m2j, a1_j = m1j - m2j - m3j, for j < 4.
                let (a0, a1) = rows[..8 * tw].split_at_mut(4 * tw);
                for j in 0..4 {
                    let (m0, m1, m2, m3) = (at(j), at(4 + j), at(8 + j), at(12 + j));
                    for ((d0, d1), (((&m0, &m1), &m2), &m3)) in a0[j * tw..][..tw]
                        .iter_mut()
                        .zip(&mut a1[j * tw..][..tw])
                        .zip(m0.iter().zip(m1).zip(m2).zip(m3))
                    {
                        *d0 = m0 + m1 + m2;
                        *d1 = m1 - m2 - m3;
                    }
                }
                // ... then along columns, into the two output rows of this row of tiles.
                for (r, a) in [&*a0, &*a1].into_iter().enumerate() {
                    let y = 2 * ty + r;
                    if y >= geo.out_h {
                        break;
                    }
                    let dst = &mut plane[y * geo.out_w..][..geo.out_w];
                    let (c0, c1, c2, c3) = (&a[..tw], &a[tw..2 * tw], &a[2 * tw..3 * tw], &a[3 * tw..]);
                    for tx in 0..tw {
                        let x = 2 * tx;
                        dst[x] = c0[tx] + c1[tx] + c2[tx] + bias;
                        if x + 1 < geo.out_w {
                            dst[x + 1] = c1[tx] - c2[tx] - c3[tx] + bias;
                        }
                    }
                }
            }
        }
    }
}

/// `Mg[xi][o][tile] = (A dy A^T)[xi]` for every 2x2 block of the output gradient `grad`
/// (`[images, out_c, out_h, out_w]`), zero where the block leaves the output; vectorised along
/// a row of tiles like [`transform_input`].
#[allow(clippy::too_many_arguments)]
fn transform_output_grad<T: Elem>(
    geo: &Correlation,
    t: &Tiling,
    grad: &[T],
    out_c: usize,
    rows: &mut [T],
    line: &mut [T],
    m: &mut [T],
    tiles: usize,
) {
    let (pixels, tw) = (geo.pixels(), t.tw);
    let half = tw + 1;
    let (g, pq) = rows.split_at_mut(4 * half);
    // Channel by channel, so that each of the 16 rows `Mg[xi][o]` is written front to back.
    for o in 0..out_c {
        for (b, image) in grad.chunks_exact(out_c * pixels).enumerate() {
            let plane = &image[o * pixels..][..pixels];
            for ty in 0..t.th {
                // The block's rows split by column parity: g[2r + p][tx] = dy[2ty + r][2tx + p].
                for r in 0..2 {
                    let y = 2 * ty + r;
                    let src = (y < geo.out_h).then(|| &plane[y * geo.out_w..][..geo.out_w]);
                    let (even, odd) = g[2 * r * half..][..2 * half].split_at_mut(half);
                    split_row(src, 0, line, even, odd);
                }
                let (g00, g01, g10, g11) = (&g[..tw], &g[half..][..tw], &g[2 * half..][..tw], &g[3 * half..][..tw]);
                let first = b * t.per_image() + ty * tw;
                let at = |i: usize, j: usize| ((i * 4 + j) * out_c + o) * tiles + first;
                // A dy along rows (A = [1 0; 1 1; 1 -1; 0 -1]): row i = (p_i, q_i) over the two
                // columns; then along columns, (p, q) -> (p, p + q, p - q, -q).
                let (p, q) = pq[..2 * tw].split_at_mut(tw);
                for i in 0..4 {
                    match i {
                        0 => {
                            p.copy_from_slice(g00);
                            q.copy_from_slice(g01);
                        }
                        1 => {
                            zip_with(p, g00, g10, |a, b| a + b);
                            zip_with(q, g01, g11, |a, b| a + b);
                        }
                        2 => {
                            zip_with(p, g00, g10, |a, b| a - b);
                            zip_with(q, g01, g11, |a, b| a - b);
                        }
                        _ => {
                            zip_with(p, g10, g10, |a, _| T::ZERO - a);
                            zip_with(q, g11, g11, |a, _| T::ZERO - a);
                        }
                    }
                    m[at(i, 0)..][..tw].copy_from_slice(p);
                    zip_with(&mut m[at(i, 1)..][..tw], p, q, |a, b| a + b);
                    zip_with(&mut m[at(i, 2)..][..tw], p, q, |a, b| a - b);
                    zip_with(&mut m[at(i, 3)..][..tw], q, q, |a, _| T::ZERO - a);
                }
            }
        }
    }
}

/// Runs `work` on every chunk of images: in parallel over chunks (one `gemm` thread each) when
/// there are enough chunks to balance the threads, otherwise chunk after chunk with the
/// threads inside `gemm`. Chunks are the same either way, so the results are too.
fn for_each_chunk<T: Elem, S: Send>(
    input: &[T],
    in_len: usize,
    out: &mut [T],
    out_len: usize,
    images: usize,
    init: impl Fn() -> S + Sync + Send,
    work: impl Fn(&mut S, &[T], &mut [T], Parallelism) + Sync + Send,
) {
    let chunks = input.len().div_ceil(images * in_len);
    if chunks >= 2 * rayon::current_num_threads() {
        input
            .par_chunks(images * in_len)
            .zip(out.par_chunks_mut(images * out_len))
            .for_each_init(init, |s, (src, dst)| work(s, src, dst, Parallelism::None));
    } else {
        let mut s = init();
        for (src, dst) in input.chunks(images * in_len).zip(out.chunks_mut(images * out_len)) {
            work(&mut s, src, dst, Parallelism::Rayon(0));
        }
    }
}

/// The forward correlation of [`super::conv_cpu::correlate`] by Winograd F(2x2, 3x3): `input`
/// `[n, in_c, in_h, in_w]`, `kernel` `[out_c, in_c * 9]`, result `[n, out_c, out_h, out_w]`.
pub(crate) fn correlate<T: Elem>(
    geo: &Correlation,
    input: &[T],
    kernel: &[T],
    out_c: usize,
    bias: Option<&[T]>,
) -> Vec<T> {
    debug_assert!(applies(geo));
    let n = input.len() / geo.in_len().max(1);
    let mut out = vec![T::ZERO; n * out_c * geo.pixels()];
    if out.is_empty() {
        return out;
    }
    let t = Tiling::new(geo);
    let u = transform_kernel(kernel, out_c, geo.in_c);
    for_each_chunk(
        input,
        geo.in_len(),
        &mut out,
        out_c * geo.pixels(),
        t.images,
        || Scratch::new(geo, &t, out_c),
        |s, src, dst, par| {
            // A short last chunk packs its rows tighter: every buffer row is `tiles` long.
            let tiles = src.len() / geo.in_len() * t.per_image();
            transform_input(geo, &t, src, s, tiles);
            for xi in 0..POSITIONS {
                matmul(
                    (out_c, tiles, geo.in_c),
                    &mut s.m[xi * out_c * tiles..][..out_c * tiles],
                    false,
                    &u[xi * out_c * geo.in_c..][..out_c * geo.in_c],
                    &s.v[xi * geo.in_c * tiles..][..geo.in_c * tiles],
                    tiles,
                    false,
                    par,
                );
            }
            transform_output(geo, &t, &s.m, tiles, &mut s.rows, dst, out_c, bias);
        },
    );
    out
}

/// The weight gradient of [`correlate`], `[out_c, in_c * 9]`, for `grad` `[n, out_c, out_h,
/// out_w]` and `input` `[n, in_c, in_h, in_w]`, as [`super::conv_cpu::correlate_weight_grad`].
pub(crate) fn correlate_weight_grad<T: Elem>(geo: &Correlation, grad: &[T], input: &[T], out_c: usize) -> Vec<T> {
    debug_assert!(applies(geo));
    let n = input.len() / geo.in_len().max(1);
    let plane = out_c * geo.in_c;
    if n == 0 {
        return vec![T::ZERO; plane * 9];
    }
    let t = Tiling::new(geo);
    let (in_len, out_len) = (geo.in_len(), out_c * geo.pixels());
    // dU of a run of chunks, accumulated chunk after chunk.
    let accumulate = |du: &mut [T], s: &mut Scratch<T>, src: &[T], g: &[T], par: Parallelism| {
        let tiles = src.len() / in_len * t.per_image();
        transform_input(geo, &t, src, s, tiles);
        transform_output_grad(geo, &t, g, out_c, &mut s.rows, &mut s.line, &mut s.m, tiles);
        for xi in 0..POSITIONS {
            // dU_xi [o, c] += Mg_xi [o, tiles] @ V_xi [c, tiles]^T
            matmul(
                (out_c, geo.in_c, tiles),
                &mut du[xi * plane..][..plane],
                true,
                &s.m[xi * out_c * tiles..][..out_c * tiles],
                &s.v[xi * geo.in_c * tiles..][..geo.in_c * tiles],
                tiles,
                true,
                par,
            );
        }
    };
    // Fixed groups of consecutive chunks, each summed in order and the groups in order, on any
    // number of threads: the sum does not depend on the thread count.
    let chunk = t.images;
    let chunks = n.div_ceil(chunk);
    let per_group = chunks.div_ceil(WEIGHT_GRAD_GROUPS) * chunk;
    let group = |s: &mut Scratch<T>, src: &[T], g: &[T], par: Parallelism| {
        let mut du = vec![T::ZERO; POSITIONS * plane];
        for (src, g) in src.chunks(chunk * in_len).zip(g.chunks(chunk * out_len)) {
            accumulate(&mut du, s, src, g, par);
        }
        du
    };
    let partial: Vec<Vec<T>> = if chunks >= 2 * rayon::current_num_threads() {
        input
            .par_chunks(per_group * in_len)
            .zip(grad.par_chunks(per_group * out_len))
            .map_init(
                || Scratch::new(geo, &t, out_c),
                |s, (src, g)| group(s, src, g, Parallelism::None),
            )
            .collect()
    } else {
        let mut s = Scratch::new(geo, &t, out_c);
        input
            .chunks(per_group * in_len)
            .zip(grad.chunks(per_group * out_len))
            .map(|(src, g)| group(&mut s, src, g, Parallelism::Rayon(0)))
            .collect()
    };
    let mut parts = partial.into_iter();
    let mut du = parts.next().unwrap_or_else(|| vec![T::ZERO; POSITIONS * plane]);
    for part in parts {
        du.iter_mut().zip(&part).for_each(|(a, b)| *a += *b);
    }
    untransform_kernel_grad(&du, out_c, geo.in_c)
}
