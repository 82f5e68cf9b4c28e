//! Registered architectures. (being written)
