//! A reader that drops a leading UTF-8 byte order mark, so that every format reads files
//! written with or without one alike. Touches nothing but the first three bytes.

use std::io::{self, Read};

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

pub struct SkipBom<R> {
    inner: R,
    /// The first bytes, held back until we know whether they are a BOM.
    head: [u8; 3],
    head_len: usize,
    head_pos: usize,
    checked: bool,
}

impl<R: Read> SkipBom<R> {
    pub fn new(inner: R) -> Self {
        SkipBom {
            inner,
            head: [0; 3],
            head_len: 0,
            head_pos: 0,
            checked: false,
        }
    }

    fn check(&mut self) -> io::Result<()> {
        // A short read does not mean end of file: keep reading until three bytes or EOF.
        while self.head_len < BOM.len() {
            match self.inner.read(&mut self.head[self.head_len..]) {
                Ok(0) => break,
                Ok(n) => self.head_len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.head[..self.head_len] == BOM {
            self.head_pos = self.head_len;
        }
        self.checked = true;
        Ok(())
    }
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.checked {
            self.check()?;
        }
        if self.head_pos < self.head_len {
            let n = (self.head_len - self.head_pos).min(buf.len());
            buf[..n].copy_from_slice(&self.head[self.head_pos..self.head_pos + n]);
            self.head_pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out one byte per read, to prove short reads are handled.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(slot)) => {
                    *slot = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn read_all(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        SkipBom::new(Trickle(bytes)).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn drops_a_leading_bom_even_when_it_arrives_byte_by_byte() {
        assert_eq!(read_all(b"\xEF\xBB\xBF{\"a\":1}"), b"{\"a\":1}");
    }

    #[test]
    fn keeps_content_without_a_bom_including_short_files() {
        assert_eq!(read_all(b"ab"), b"ab");
        assert_eq!(read_all(b""), b"");
        assert_eq!(read_all(b"\xEF\xBBx"), b"\xEF\xBBx");
        assert_eq!(read_all(b"x\xEF\xBB\xBF"), b"x\xEF\xBB\xBF");
    }
}
