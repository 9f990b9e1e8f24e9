//! The streaming half of fetching: what the bytes of a resource pass through on their way to
//! a [`Sink`] (gunzip, then the hash of the decompressed bytes), a chunk at a time.

use super::FetchError;
use crate::tftp::TftpError;
use keel_http::HttpError;
use sha2::Digest;
use std::io::{Read, Seek, Write};

/// Bytes moved at a time from the source through gunzip and the hash to the sink.
const CHUNK: usize = 64 * 1024;

/// Where fetched bytes go; a retried download starts over with [`Sink::restart`].
pub trait Sink: Write {
    /// Forgets what this fetch wrote so far.
    fn restart(&mut self) -> std::io::Result<()>;
}

/// Bytes held in memory (configs, CA bundles, key files), at most `max` of them: a source
/// that sends more fails the fetch instead of taking the machine's memory.
pub struct MemorySink {
    pub data: Vec<u8>,
    max: usize,
}

impl MemorySink {
    pub fn new(max: usize) -> MemorySink {
        MemorySink {
            data: Vec::new(),
            max,
        }
    }
}

impl Write for MemorySink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.data.len().saturating_add(buf.len()) > self.max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!("more than {} bytes, the most held in memory", self.max),
            ));
        }
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink for MemorySink {
    fn restart(&mut self) -> std::io::Result<()> {
        self.data.clear();
        Ok(())
    }
}

/// A file written from its current position on (a retry truncates back to it).
pub struct FileSink<'f> {
    file: &'f mut std::fs::File,
    start: u64,
}

impl<'f> FileSink<'f> {
    pub fn new(file: &'f mut std::fs::File) -> std::io::Result<FileSink<'f>> {
        let start = file.stream_position()?;
        Ok(FileSink { file, start })
    }
}

impl Write for FileSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Sink for FileSink<'_> {
    fn restart(&mut self) -> std::io::Result<()> {
        self.file.set_len(self.start)?;
        self.file.seek(std::io::SeekFrom::Start(self.start))?;
        Ok(())
    }
}

/// `sha512-<hex>` / `sha256-<hex>`, parsed before anything is fetched.
pub(super) enum Expected {
    Sha512(String),
    Sha256(String),
}

pub(super) enum Hasher {
    None,
    Sha512(sha2::Sha512),
    Sha256(sha2::Sha256),
}

impl Expected {
    pub(super) fn parse(spec: &str) -> Result<Expected, FetchError> {
        match spec.split_once('-') {
            Some(("sha512", hex)) => Ok(Expected::Sha512(hex.to_string())),
            Some(("sha256", hex)) => Ok(Expected::Sha256(hex.to_string())),
            _ => Err(FetchError::BadHash(spec.to_string())),
        }
    }

    pub(super) fn hasher(&self) -> Hasher {
        match self {
            Expected::Sha512(_) => Hasher::Sha512(sha2::Sha512::new()),
            Expected::Sha256(_) => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub(super) fn check(&self, hasher: Hasher) -> Result<(), FetchError> {
        let (calculated, expected) = match (hasher, self) {
            (Hasher::Sha512(h), Expected::Sha512(e)) => (hex::encode(h.finalize()), e),
            (Hasher::Sha256(h), Expected::Sha256(e)) => (hex::encode(h.finalize()), e),
            _ => return Ok(()),
        };
        if calculated.eq_ignore_ascii_case(expected) {
            Ok(())
        } else {
            Err(FetchError::HashMismatch {
                calculated,
                expected: expected.clone(),
            })
        }
    }
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::None => {}
            Hasher::Sha512(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }
}

/// A source reader that remembers whether reading the source itself failed (a network error,
/// worth a retry) as opposed to the data being bad (gunzip) or the sink failing.
pub(super) struct Source<'a> {
    pub(super) inner: &'a mut dyn Read,
    pub(super) url: &'a str,
    pub(super) failed: Option<std::io::Error>,
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() != std::io::ErrorKind::Interrupted => {
                let copy = std::io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                Err(copy)
            }
            r => r,
        }
    }
}

impl Source<'_> {
    /// The error for a failed read through this source (maybe through gunzip): the source's
    /// own (a TFTP error, or an HTTP transport error), else bad gzip data.
    fn read_error(&mut self, e: std::io::Error, gzip: bool) -> FetchError {
        let transport = |message: String| {
            FetchError::Http(HttpError::Transport {
                url: self.url.to_string(),
                message: format!("reading the response body: {message}"),
            })
        };
        match self.failed.take() {
            Some(failed) => match failed.downcast::<TftpError>() {
                Ok(t) => FetchError::Tftp(t),
                Err(failed) => transport(failed.to_string()),
            },
            None if gzip => FetchError::Gunzip(e),
            None => transport(e.to_string()),
        }
    }
}

/// Copies `source` (gunzipped when `gzip`) into `sink` through `hasher`, a chunk at a time;
/// returns the number of bytes written.
pub(super) fn pump(
    source: &mut Source,
    gzip: bool,
    sink: &mut dyn Sink,
    hasher: &mut Hasher,
) -> Result<u64, FetchError> {
    let copied = {
        let mut reader: Box<dyn Read + '_> = if gzip {
            Box::new(flate2::read::GzDecoder::new(&mut *source))
        } else {
            Box::new(&mut *source)
        };
        copy_chunks(&mut reader, sink, hasher)
    };
    copied.map_err(|(e, reading)| {
        if reading {
            source.read_error(e, gzip)
        } else {
            FetchError::Write(e)
        }
    })
}

/// The copy loop of [`pump`]; an error says whether reading (true) or writing failed.
fn copy_chunks(
    reader: &mut dyn Read,
    sink: &mut dyn Sink,
    hasher: &mut Hasher,
) -> Result<u64, (std::io::Error, bool)> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((e, true)),
        };
        hasher.update(&buf[..n]);
        sink.write_all(&buf[..n]).map_err(|e| (e, false))?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_file_sink_keeps_what_was_there_before_it() {
        let d = tempfile::tempdir().unwrap();
        let mut f = std::fs::File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(d.path().join("f"))
            .unwrap();
        f.write_all(b"old|").unwrap();
        let mut sink = FileSink::new(&mut f).unwrap();
        sink.write_all(b"partial").unwrap();
        sink.restart().unwrap();
        sink.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(d.path().join("f")).unwrap(), b"old|new");
    }

    #[test]
    fn gzip_and_hash_are_computed_while_copying() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&vec![7u8; 3 * CHUNK + 5]).unwrap();
        let gz = gz.finish().unwrap();
        let want = hex::encode(sha2::Sha256::digest(vec![7u8; 3 * CHUNK + 5]));
        let expected = Expected::parse(&format!("sha256-{want}")).unwrap();
        let mut hasher = expected.hasher();
        let mut out = MemorySink::new(usize::MAX);
        let mut body = gz.as_slice();
        let mut source = Source {
            inner: &mut body,
            url: "data:",
            failed: None,
        };
        let n = pump(&mut source, true, &mut out, &mut hasher).unwrap();
        assert_eq!(n, 3 * CHUNK as u64 + 5);
        assert_eq!(out.data.len(), 3 * CHUNK + 5);
        expected.check(hasher).unwrap();
        let mut truncated = &gz[..gz.len() / 2];
        let mut source = Source {
            inner: &mut truncated,
            url: "data:",
            failed: None,
        };
        let err = pump(
            &mut source,
            true,
            &mut MemorySink::new(usize::MAX),
            &mut Hasher::None,
        )
        .unwrap_err();
        assert!(matches!(err, FetchError::Gunzip(_)), "{err}");
    }

    #[test]
    fn memory_sink_refuses_more_than_its_bound() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&vec![0u8; 4 * CHUNK]).unwrap();
        let gz = gz.finish().unwrap();
        let mut body = gz.as_slice();
        let mut source = Source {
            inner: &mut body,
            url: "data:",
            failed: None,
        };
        let mut sink = MemorySink::new(CHUNK);
        let err = pump(&mut source, true, &mut sink, &mut Hasher::None).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
        assert!(sink.data.len() <= CHUNK);
    }
}
