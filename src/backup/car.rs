//! CAR v1 files (the IPFS "content archive": a dag-cbor header naming the roots, then
//! varint-length-prefixed `CID ‖ block` sections), written and read as streams (a big node's
//! archive is many GB), with every block's hash checked on read so a damaged archive is caught
//! before anything is restored from it.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use cid::Cid;
use multihash::Multihash;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Multihash codes we can recompute; every block js-ceramic writes uses sha2-256.
const SHA2_256: u64 = 0x12;
const IDENTITY: u64 = 0x00;

#[derive(Serialize, Deserialize)]
struct Header {
    // dag-cbor orders map keys by length, then bytes: "roots" before "version".
    roots: Vec<Cid>,
    version: u64,
}

/// Streams blocks into a CAR v1 file.
pub struct CarWriter<W: Write> {
    out: W,
    blocks: u64,
    bytes: u64,
}

impl<W: Write> CarWriter<W> {
    pub fn new(mut out: W, roots: &[Cid]) -> std::io::Result<Self> {
        let header = serde_ipld_dagcbor::to_vec(&Header {
            roots: roots.to_vec(),
            version: 1,
        })
        .map_err(std::io::Error::other)?;
        write_section(&mut out, &[&header])?;
        Ok(Self {
            out,
            blocks: 0,
            bytes: 0,
        })
    }

    pub fn add(&mut self, cid: &Cid, data: &[u8]) -> std::io::Result<()> {
        write_section(&mut self.out, &[&cid.to_bytes(), data])?;
        self.blocks += 1;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Flushes and returns (blocks, payload bytes) written.
    pub fn finish(mut self) -> std::io::Result<(u64, u64)> {
        self.out.flush()?;
        Ok((self.blocks, self.bytes))
    }
}

fn write_section(out: &mut impl Write, parts: &[&[u8]]) -> std::io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut buf = unsigned_varint::encode::u64_buffer();
    out.write_all(unsigned_varint::encode::u64(len as u64, &mut buf))?;
    for p in parts {
        out.write_all(p)?;
    }
    Ok(())
}

/// Reads a CAR section by section from any reader (a file of many GB never sits in memory).
pub struct CarReader<R: Read> {
    inner: R,
    /// Bytes consumed so far.
    pos: u64,
    /// The file's length, to tell a truncated section from a malformed one.
    len: u64,
    pub roots: Vec<Cid>,
}

/// One block of a CAR: its CID, its bytes and where the bytes start in the file.
pub struct Section {
    pub cid: Cid,
    pub data: Vec<u8>,
    pub offset: u64,
}

impl<R: Read> CarReader<R> {
    /// Reads the header of a CAR of `len` bytes; an unreadable header is an error.
    pub fn new(inner: R, len: u64) -> Result<Self, String> {
        let mut r = Self {
            inner,
            pos: 0,
            len,
            roots: Vec::new(),
        };
        let header = r
            .section()
            .and_then(|h| h.ok_or_else(|| "the file is empty".to_string()))
            .map_err(|e| format!("CAR header unreadable: {e}"))?;
        let header: Header = serde_ipld_dagcbor::from_slice(&header)
            .map_err(|e| format!("CAR header is not a dag-cbor {{roots, version}} map: {e}"))?;
        if header.version != 1 {
            return Err(format!(
                "CAR version {} (only version 1 is read)",
                header.version
            ));
        }
        r.roots = header.roots;
        Ok(r)
    }

    /// The next block, `None` at the end of the file. An error says where and why the rest of
    /// the file cannot be read (truncated, malformed); the blocks before it were fine.
    pub fn next_block(&mut self) -> Result<Option<Section>, String> {
        let start = self.pos;
        let Some(body) = self
            .section()
            .map_err(|e| format!("at byte {start} of {}: {e}", self.len))?
        else {
            return Ok(None);
        };
        let (cid, used) = crate::ids::read_cid(&body, "CAR block CID")
            .map_err(|e| format!("at byte {start}: {e}"))?;
        let offset = self.pos - (body.len() - used) as u64;
        let mut data = body;
        data.drain(..used);
        Ok(Some(Section { cid, data, offset }))
    }

    /// One varint-prefixed section's body; `None` at a clean end of file.
    fn section(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut varint = [0u8; 10];
        let mut n = 0;
        loop {
            let mut byte = [0u8; 1];
            match self.inner.read(&mut byte) {
                Ok(0) if n == 0 => return Ok(None),
                Ok(0) => return Err("truncated inside a section length".into()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("cannot read: {e}")),
            }
            varint[n] = byte[0];
            n += 1;
            self.pos += 1;
            if byte[0] & 0x80 == 0 || n == varint.len() {
                break;
            }
        }
        let (len, _) = unsigned_varint::decode::u64(&varint[..n])
            .map_err(|e| format!("bad section length: {e}"))?;
        if len == 0 {
            return Err("empty section".into());
        }
        let left = self.len.saturating_sub(self.pos);
        if len > left {
            return Err(format!(
                "truncated: a section of {len} bytes starts at {} but the file ends at {}",
                self.pos, self.len
            ));
        }
        let mut body = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut body)
            .map_err(|e| format!("truncated at byte {}: {e}", self.pos))?;
        self.pos += len;
        Ok(Some(body))
    }
}

/// Where each sound block of a CAR file is, found in one streaming pass that checks every
/// block's hash: the blocks themselves stay on disk ([`CarIndex::get`] reads one back).
#[derive(Debug, Default)]
pub struct CarIndex {
    pub roots: Vec<Cid>,
    /// Multihash (how IPFS keys blocks) → (offset, length) of its bytes in the file.
    pub blocks: HashMap<Vec<u8>, (u64, u32)>,
    /// Blocks whose bytes do not hash to their CID.
    pub corrupt: Vec<Cid>,
    /// Why reading stopped early (truncated or malformed), with the byte offset.
    pub damage: Option<String>,
    file: Option<std::fs::File>,
}

impl CarIndex {
    /// Indexes the CAR at `path`; an unreadable file or header is an error, later damage is
    /// recorded in `damage`, keeping every block before it.
    pub fn open(path: &Path) -> Result<Self, String> {
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut reader = CarReader::new(BufReader::new(&file), len)?;
        let mut out = CarIndex::default();
        loop {
            match reader.next_block() {
                Ok(None) => break,
                Ok(Some(b)) if hash_matches(b.cid.hash(), &b.data) => {
                    out.blocks
                        .insert(b.cid.hash().to_bytes(), (b.offset, b.data.len() as u32));
                }
                Ok(Some(b)) => out.corrupt.push(b.cid),
                Err(e) => {
                    out.damage = Some(e);
                    break;
                }
            }
        }
        out.roots = std::mem::take(&mut reader.roots);
        drop(reader);
        out.file = Some(file);
        Ok(out)
    }

    /// A sound block's bytes, read back from the file (`None`: not in the CAR, or unreadable).
    pub fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let &(offset, len) = self.blocks.get(&cid.hash().to_bytes())?;
        let mut data = vec![0u8; len as usize];
        self.file.as_ref()?.read_exact_at(&mut data, offset).ok()?;
        Some(data)
    }
}

/// The CAR at a path as a sequence of CARs of at most about `max_bytes` each (same roots): a
/// restore imports a many-GB archive piece by piece, never whole.
pub struct CarPieces {
    reader: CarReader<BufReader<std::fs::File>>,
    max_bytes: usize,
}

impl CarPieces {
    pub fn open(path: &Path, max_bytes: usize) -> Result<Self, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let len = file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        let reader = CarReader::new(BufReader::new(file), len)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { reader, max_bytes })
    }

    /// The next piece, `None` when the archive is done.
    pub fn next_piece(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut piece: Option<CarWriter<Vec<u8>>> = None;
        while let Some(b) = self.reader.next_block()? {
            let w = match &mut piece {
                Some(w) => w,
                None => piece.insert(
                    CarWriter::new(Vec::new(), &self.reader.roots).map_err(|e| e.to_string())?,
                ),
            };
            w.add(&b.cid, &b.data).map_err(|e| e.to_string())?;
            if w.out.len() >= self.max_bytes {
                break;
            }
        }
        Ok(piece.map(|w| w.out))
    }
}

/// Whether `data` hashes to `mh`. Unknown hash functions count as matching only if never used
/// by Ceramic; we know none, so they are reported as mismatches rather than trusted.
pub fn hash_matches(mh: &Multihash<64>, data: &[u8]) -> bool {
    match mh.code() {
        SHA2_256 => Sha256::digest(data).as_slice() == mh.digest(),
        IDENTITY => data == mh.digest(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid_of(data: &[u8]) -> Cid {
        let mh = Multihash::<64>::wrap(SHA2_256, &Sha256::digest(data)).unwrap();
        Cid::new_v1(0x71, mh)
    }

    fn index(bytes: &[u8]) -> CarIndex {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.car");
        std::fs::write(&p, bytes).unwrap();
        CarIndex::open(&p).unwrap()
    }

    #[test]
    fn round_trip_truncation_and_pieces() {
        let blocks: Vec<Vec<u8>> = vec![b"\xa1aa\x01".to_vec(), b"\xa1ab\x02".to_vec()];
        let mut buf = Vec::new();
        let mut w = CarWriter::new(&mut buf, &[cid_of(&blocks[0])]).unwrap();
        for b in &blocks {
            w.add(&cid_of(b), b).unwrap();
        }
        assert_eq!(w.finish().unwrap(), (2, 8));
        let car = index(&buf);
        assert_eq!(car.roots, vec![cid_of(&blocks[0])]);
        assert_eq!(car.blocks.len(), 2);
        assert_eq!(car.get(&cid_of(&blocks[1])), Some(blocks[1].clone()));
        assert!(car.damage.is_none() && car.corrupt.is_empty());
        let cut = index(&buf[..buf.len() - 2]);
        assert_eq!(cut.blocks.len(), 1);
        assert!(cut.damage.unwrap().contains("truncated"));
        let mut flipped = buf.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(index(&flipped).corrupt.len(), 1);
        // Pieces of one block each, every one a CAR with the same roots.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.car");
        std::fs::write(&p, &buf).unwrap();
        let mut pieces = Vec::new();
        let mut reader = CarPieces::open(&p, 1).unwrap();
        while let Some(piece) = reader.next_piece().unwrap() {
            pieces.push(piece);
        }
        assert_eq!(pieces.len(), 2);
        for (piece, block) in pieces.iter().zip(&blocks) {
            let car = index(piece);
            assert_eq!((car.roots.len(), car.blocks.len()), (1, 1));
            assert_eq!(car.get(&cid_of(block)).as_ref(), Some(block));
        }
    }
}
