//! The one binary encoding for every state that can be handed off
//! (DESIGN.md, "What a handoff carries"). Little-endian, length-prefixed,
//! no padding. Each record type writes a leading format version with
//! [`Writer::version`] and its decoder accepts the current and the previous
//! version, so rolling upgrades can read what the old build wrote.
//!
//! Hand-written rather than serde: secrets travel through `Zeroizing`
//! buffers and we want to know every byte that is written.

use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record truncated: needed {needed} more bytes")]
    Truncated { needed: usize },
    #[error("unknown {what} format version {version}")]
    Version { what: &'static str, version: u16 },
    #[error("invalid value for {0}")]
    Invalid(&'static str),
    #[error("{0} trailing bytes after record")]
    Trailing(usize),
}

/// Appends fields to a buffer. Secrets should be written into a
/// `Writer::secret()` so the buffer is wiped when dropped.
pub struct Writer {
    buf: Zeroizing<Vec<u8>>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Zeroizing::new(Vec::with_capacity(256)) }
    }
    pub fn with_capacity(n: usize) -> Self {
        Writer { buf: Zeroizing::new(Vec::with_capacity(n)) }
    }
    /// Writes a record tag and version.
    pub fn version(&mut self, tag: u16, version: u16) {
        self.u16(tag);
        self.u16(version);
    }
    /// Makes room for `n` more bytes. A plain `Vec` would reallocate and
    /// free the old block with the secrets still in it; here the bytes move
    /// to a bigger buffer and the old one is wiped before it is freed.
    fn room(&mut self, n: usize) {
        if self.buf.len() + n > self.buf.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity((self.buf.len() + n).max(2 * self.buf.capacity())));
            bigger.extend_from_slice(&self.buf);
            // Dropping the old Zeroizing wipes it.
            self.buf = bigger;
        }
    }
    pub fn u8(&mut self, v: u8) {
        self.room(1);
        self.buf.push(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
    pub fn u16(&mut self, v: u16) {
        self.raw(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.raw(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.raw(&v.to_le_bytes());
    }
    /// A u32 length prefix, then the bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.raw(v);
    }
    pub fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(x) => {
                self.u8(1);
                self.u64(x)
            }
            None => self.u8(0),
        }
    }
    /// Raw bytes with no prefix (for fixed-size arrays).
    pub fn raw(&mut self, v: &[u8]) {
        self.room(v.len());
        self.buf.extend_from_slice(v);
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// The encoded bytes, in a buffer that wipes itself on drop.
    pub fn finish(self) -> Zeroizing<Vec<u8>> {
        self.buf
    }
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads fields back in the order they were written.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let rest = self.buf.len() - self.pos;
        if rest < n {
            return Err(DecodeError::Truncated { needed: n - rest });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// Reads a tag and version, checking the tag and that the version is in
    /// `oldest..=current`. Returns the version found.
    pub fn version(&mut self, what: &'static str, tag: u16, oldest: u16, current: u16) -> Result<u16, DecodeError> {
        let t = self.u16()?;
        if t != tag {
            return Err(DecodeError::Invalid(what));
        }
        let v = self.u16()?;
        if v < oldest || v > current {
            return Err(DecodeError::Version { what, version: v });
        }
        Ok(v)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid("bool")),
        }
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap_or([0; 2])))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap_or([0; 4])))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap_or([0; 8])))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            _ => Err(DecodeError::Invalid("option")),
        }
    }
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.take(n)
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_field_kind() {
        let mut w = Writer::new();
        w.version(7, 2);
        w.u8(1);
        w.bool(true);
        w.u16(0xbeef);
        w.u32(0xdead_beef);
        w.u64(u64::MAX - 1);
        w.bytes(b"hello");
        w.opt_u64(Some(9));
        w.opt_u64(None);
        w.raw(&[1, 2, 3]);
        let buf = w.finish();
        let mut r = Reader::new(&buf);
        assert_eq!(r.version("t", 7, 1, 2).unwrap(), 2);
        assert_eq!(r.u8().unwrap(), 1);
        assert!(r.bool().unwrap());
        assert_eq!(r.u16().unwrap(), 0xbeef);
        assert_eq!(r.u32().unwrap(), 0xdead_beef);
        assert_eq!(r.u64().unwrap(), u64::MAX - 1);
        assert_eq!(r.bytes().unwrap(), b"hello");
        assert_eq!(r.opt_u64().unwrap(), Some(9));
        assert_eq!(r.opt_u64().unwrap(), None);
        assert_eq!(r.array::<3>().unwrap(), [1, 2, 3]);
        r.finish().unwrap();
    }

    #[test]
    fn truncated_and_future_versions_are_errors() {
        let mut w = Writer::new();
        w.version(7, 3);
        let buf = w.finish();
        assert_eq!(Reader::new(&buf).version("t", 7, 1, 2), Err(DecodeError::Version { what: "t", version: 3 }));
        assert!(matches!(Reader::new(&buf[..3]).version("t", 7, 1, 3), Err(DecodeError::Truncated { .. })));
        let mut r = Reader::new(&[5, 0, 0, 0, 1]);
        assert!(matches!(r.bytes(), Err(DecodeError::Truncated { needed: 4 })));
    }
}
