//! The matrix product behind both CPU convolution kernels (`conv_cpu.rs`, `conv_winograd.rs`):
//! one call of the `gemm` crate on row-major slices, the only `unsafe` of the convolutions.

use gemm::Parallelism;

use super::cpu_op::Elem;

/// `dst[m, n] (+)= lhs[m, k] @ rhs[k, n]`, all row-major with the given row strides, except that
/// `rhs_t` reads `rhs` transposed (its element (i, j) at `j * rhs_rs + i`).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul<T: Elem>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    accumulate: bool,
    lhs: &[T],
    rhs: &[T],
    rhs_rs: usize,
    rhs_t: bool,
    parallelism: Parallelism,
) {
    debug_assert!(dst.len() >= m * n && lhs.len() >= m * k);
    let (rhs_cs, rhs_rs) = if rhs_t {
        (rhs_rs as isize, 1)
    } else {
        (1, rhs_rs as isize)
    };
    // SAFETY: the slices cover the strided matrices described (checked by the callers' sizes),
    // `dst` is exclusively borrowed and distinct from `lhs` and `rhs`; `T` is f32 or f64, which
    // `gemm` supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            if accumulate { T::ONE } else { T::ZERO },
            T::ONE,
            false,
            false,
            false,
            parallelism,
        )
    }
}
