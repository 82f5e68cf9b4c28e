//! PyTorch `.pt` files, read without PyTorch: a bounded pickle reader ([`pickle`]), the
//! zip archive and its tensors ([`archive`]), and the layouts in which the method
//! repositories save synthetic sets ([`layouts`]). `cafe-lab evaluate --synthetic FILE.pt` and
//! Python's `cafe_lab.evaluate("FILE.pt", ...)` read them through [`read_pt_set`].

pub mod archive;
pub mod layouts;
pub mod pickle;

#[cfg(test)]
mod robustness_tests;

pub use archive::{looks_like_torch_file, PtFile, PtTensor, Values};
pub use layouts::{read_pt_set, Layout, PtSet, PtSources, EXPECTED};
