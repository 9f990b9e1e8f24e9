//! Raw-deflate compression for archive objects with one reused compressor per thread, so that
//! committing many files does not allocate a fresh deflate state (hundreds of KiB) per file.

use flate2::{Compress, Compression, FlushCompress, Status};
use std::cell::RefCell;
use std::io::{self, Read, Write};

const CHUNK: usize = 64 * 1024;

struct State {
    z: Compress,
    input: Vec<u8>,
    output: Vec<u8>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Read until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Compress everything `input` yields as raw deflate at `level` into `out`; returns the number
/// of uncompressed bytes.
pub fn deflate_raw(input: &mut dyn Read, out: &mut dyn Write, level: u32) -> io::Result<u64> {
    STATE.with_borrow_mut(|slot| {
        let st = slot.get_or_insert_with(|| State {
            z: Compress::new(Compression::new(level), false),
            input: vec![0; CHUNK],
            output: vec![0; CHUNK],
        });
        st.z.reset();
        let mut total = 0u64;
        loop {
            let n = read_full(input, &mut st.input)?;
            total += n as u64;
            let flush = if n < CHUNK {
                FlushCompress::Finish
            } else {
                FlushCompress::None
            };
            let mut pos = 0;
            loop {
                let (in0, out0) = (st.z.total_in(), st.z.total_out());
                let status =
                    st.z.compress(&st.input[pos..n], &mut st.output, flush)
                        .map_err(io::Error::other)?;
                pos += (st.z.total_in() - in0) as usize;
                let produced = (st.z.total_out() - out0) as usize;
                out.write_all(&st.output[..produced])?;
                let done = match flush {
                    FlushCompress::Finish => status == Status::StreamEnd,
                    _ => pos == n && produced < CHUNK,
                };
                if done {
                    break;
                }
            }
            if n < CHUNK {
                return Ok(total);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::DeflateDecoder;

    #[test]
    fn roundtrip_table() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for data in [Vec::new(), b"hello\n".to_vec(), vec![0u8; CHUNK], big] {
            for _ in 0..2 {
                let mut out = Vec::new();
                let n = deflate_raw(&mut data.as_slice(), &mut out, 1).unwrap();
                assert_eq!(n, data.len() as u64);
                let mut back = Vec::new();
                DeflateDecoder::new(out.as_slice())
                    .read_to_end(&mut back)
                    .unwrap();
                assert_eq!(back, data);
                if data.is_empty() {
                    assert_eq!(out, vec![3, 0], "ostree's empty-file deflate bytes");
                }
            }
        }
    }
}
