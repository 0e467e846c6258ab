//! Checked big-endian reader and length-prefixed emitters for TLS
//! presentation-language structures (RFC 8446 §3). Every read is bounds
//! checked and reports `TlsError::Decode`; nothing here can panic on input.

use super::TlsError;

/// A cursor over untrusted bytes.
#[derive(Clone, Debug)]
pub struct Rd<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Rd<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Rd { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TlsError> {
        let end = self.pos.checked_add(n).ok_or(TlsError::Decode(what))?;
        let s = self.buf.get(self.pos..end).ok_or(TlsError::Decode(what))?;
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self, what: &'static str) -> Result<u8, TlsError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0))
    }
    pub fn u16(&mut self, what: &'static str) -> Result<u16, TlsError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s.first().copied().unwrap_or(0), s.get(1).copied().unwrap_or(0)]))
    }
    pub fn u24(&mut self, what: &'static str) -> Result<u32, TlsError> {
        let s = self.take(3, what)?;
        let mut b = [0u8; 4];
        b[1..].copy_from_slice(s);
        Ok(u32::from_be_bytes(b))
    }
    /// `opaque x<lo..hi>` with a one-byte length.
    pub fn vec8(&mut self, lo: usize, hi: usize, what: &'static str) -> Result<&'a [u8], TlsError> {
        let n = self.u8(what)? as usize;
        check_len(n, lo, hi, what)?;
        self.take(n, what)
    }
    /// `opaque x<lo..hi>` with a two-byte length.
    pub fn vec16(&mut self, lo: usize, hi: usize, what: &'static str) -> Result<&'a [u8], TlsError> {
        let n = self.u16(what)? as usize;
        check_len(n, lo, hi, what)?;
        self.take(n, what)
    }
    /// `opaque x<lo..hi>` with a three-byte length.
    pub fn vec24(&mut self, lo: usize, hi: usize, what: &'static str) -> Result<&'a [u8], TlsError> {
        let n = self.u24(what)? as usize;
        check_len(n, lo, hi, what)?;
        self.take(n, what)
    }
    /// Fails with decode_error if bytes are left over.
    pub fn expect_end(&self, what: &'static str) -> Result<(), TlsError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(TlsError::Decode(what))
        }
    }
}

fn check_len(n: usize, lo: usize, hi: usize, what: &'static str) -> Result<(), TlsError> {
    if n < lo || n > hi {
        Err(TlsError::Decode(what))
    } else {
        Ok(())
    }
}

/// Appends a big-endian u16.
pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a big-endian u24 (values above 2^24-1 are a caller bug; they are
/// clamped so the output stays well formed in length).
pub fn put_u24(out: &mut Vec<u8>, v: usize) {
    let v = v.min(0xff_ffff) as u32;
    out.extend_from_slice(&v.to_be_bytes()[1..]);
}

/// Writes a length placeholder of `width` bytes, runs `f`, then fills it in.
pub fn with_len(out: &mut Vec<u8>, width: usize, f: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.resize(at + width, 0);
    f(out);
    let n = out.len() - at - width;
    let be = (n as u32).to_be_bytes();
    if let Some(dst) = out.get_mut(at..at + width) {
        dst.copy_from_slice(&be[4 - width..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked() {
        let mut r = Rd::new(&[0, 3, 1, 2]);
        assert_eq!(r.vec16(0, 10, "x"), Err(TlsError::Decode("x")));
        let mut r = Rd::new(&[0, 2, 1, 2]);
        assert_eq!(r.vec16(0, 10, "x").unwrap(), &[1, 2]);
        r.expect_end("end").unwrap();
        let mut r = Rd::new(&[5, 1, 2, 3, 4, 5]);
        assert_eq!(r.vec8(0, 4, "x"), Err(TlsError::Decode("x")));
        let mut r = Rd::new(&[0, 0, 1, 9]);
        assert_eq!(r.vec24(1, 10, "x").unwrap(), &[9]);
        assert_eq!(Rd::new(&[1]).u16("u"), Err(TlsError::Decode("u")));
        assert_eq!(Rd::new(&[1, 2]).u24("u"), Err(TlsError::Decode("u")));
    }

    #[test]
    fn with_len_fills_prefix() {
        let mut v = vec![];
        with_len(&mut v, 3, |o| o.extend_from_slice(&[7; 5]));
        assert_eq!(v, [0, 0, 5, 7, 7, 7, 7, 7]);
        let mut v = vec![];
        with_len(&mut v, 1, |_| {});
        assert_eq!(v, [0]);
    }
}
