//! Decompression with a ceiling. A gzip or zlib stream may expand a thousandfold, and a
//! crafted one says nothing true about its size; but every stream the loaders inflate has a
//! size it should come to (what an IDX header announces, what a MAT element's tag declares,
//! the canonical archive's contents). Reading stops with an error a [`MARGIN`] past that size,
//! before memory or disk follow the stream any further.

use std::io::{self, Read};

/// How far past its expected size a stream may still be read: enough that a file slightly off
/// keeps its precise error further on (IDX "too long", a MAT element that does not parse),
/// small beside any real dataset file.
pub(crate) const MARGIN: u64 = 1 << 20;

/// A reader that yields at most `cap` bytes, then fails (and remembers that it did) if the
/// inner reader has more: a silent cut-off could look like a complete, shorter stream.
pub(crate) struct Capped<R> {
    inner: R,
    left: u64,
    overran: bool,
}

impl<R: Read> Capped<R> {
    pub(crate) fn new(inner: R, cap: u64) -> Self {
        Self {
            inner,
            left: cap,
            overran: false,
        }
    }

    /// True once the stream turned out to hold more than the cap.
    pub(crate) fn overran(&self) -> bool {
        self.overran
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // The stream may end exactly at the cap: only a further byte is an overrun.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.overran = true;
                    Err(io::Error::other("the stream is longer than its expected size"))
                }
            };
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Appends all of `reader` to `out` unless it holds more than `cap` bytes: `Ok(false)` then
/// (with `out` holding the first `cap`), `Ok(true)` when the whole stream fitted.
pub(crate) fn read_capped(reader: impl Read, cap: u64, out: &mut Vec<u8>) -> io::Result<bool> {
    let mut capped = Capped::new(reader, cap);
    match capped.read_to_end(out) {
        Ok(_) => Ok(true),
        Err(_) if capped.overran() => Ok(false),
        Err(e) => Err(e),
    }
}
