//! Whether the backward passes of this module's ops record a graph of their own.
//!
//! candle records the backward pass (so that it can be differentiated again, which DC needs)
//! when `CANDLE_GRAD_DO_NOT_DETACH` is set, and cafe-lab sets it for the whole process when a
//! matcher needs second-order gradients ([`crate::enable_second_order_gradients`]). A recorded
//! gradient holds every tensor it was computed from until candle consumes it; measured on the
//! ConvNet forward+backward, that is what made the backward peak at 2.4x its activations.
//!
//! So the ops of [`crate::nn`] return *detached* gradients unless a graph is wanted: when the
//! switch is off, or inside [`first_order`], which a caller uses for a backward pass whose
//! gradients it will only read (DC's gradients of the real images, any training step). candle's
//! own ops (matmul, reshape, ...) still follow the process-wide switch; they are the small part.

use std::cell::Cell;

use candle_core::Tensor;

use super::scoped_override::with_override;

thread_local! {
    /// `Some(false)` inside [`first_order`]; `None`: follow candle's switch.
    static OVERRIDE: Cell<Option<bool>> = const { Cell::new(None) };
}

/// candle's switch, parsed as candle parses it.
fn candle_keeps_graph() -> bool {
    std::env::var("CANDLE_GRAD_DO_NOT_DETACH").is_ok_and(|s| !s.is_empty() && s != "0")
}

/// True when the gradients the ops compute must stay differentiable.
pub fn backward_keeps_graph() -> bool {
    OVERRIDE.with(Cell::get).unwrap_or_else(candle_keeps_graph)
}

/// Runs `f` (typically `loss.backward()`) with this module's ops computing first-order
/// gradients only: the gradients they return carry no graph, so that every intermediate is
/// freed as soon as it is consumed. Differentiating those gradients again is then an error
/// caught by the caller (no path), never a silently wrong value. Nests; restores on panic.
pub fn first_order<R>(f: impl FnOnce() -> R) -> R {
    with_override(&OVERRIDE, false, f)
}

/// A gradient an op hands back to candle: detached unless a graph is wanted.
pub(crate) fn settle(grad: Option<Tensor>) -> Option<Tensor> {
    match grad {
        Some(g) if !backward_keeps_graph() => Some(g.detach()),
        other => other,
    }
}
