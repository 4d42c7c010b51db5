//! CAR v1 files (the IPFS "content archive": a dag-cbor header naming the roots, then
//! varint-length-prefixed `CID ‖ block` sections), written and read whole, with every block's
//! hash checked on read so a damaged archive is caught before anything is restored from it.

use std::collections::BTreeMap;
use std::io::Write;

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

/// A CAR read back: its roots and blocks, plus whatever was wrong with it.
#[derive(Debug, Default)]
pub struct CarContents {
    pub roots: Vec<Cid>,
    /// Blocks whose bytes hash to their CID, keyed by multihash (how IPFS stores them).
    pub blocks: BTreeMap<Vec<u8>, (Cid, Vec<u8>)>,
    /// Blocks whose bytes do not hash to their CID.
    pub corrupt: Vec<Cid>,
    /// Why reading stopped early (truncated or malformed), with the byte offset.
    pub damage: Option<String>,
}

impl CarContents {
    pub fn get(&self, cid: &Cid) -> Option<&[u8]> {
        self.blocks
            .get(&cid.hash().to_bytes())
            .map(|(_, d)| d.as_slice())
    }
}

/// Reads a whole CAR. Damage after the header is reported in `damage`, keeping every block read
/// before it; an unreadable header is an error.
pub fn read_car(bytes: &[u8]) -> Result<CarContents, String> {
    let (header, mut pos) = section(bytes, 0).map_err(|e| format!("CAR header unreadable: {e}"))?;
    let header: Header = serde_ipld_dagcbor::from_slice(header)
        .map_err(|e| format!("CAR header is not a dag-cbor {{roots, version}} map: {e}"))?;
    if header.version != 1 {
        return Err(format!(
            "CAR version {} (only version 1 is read)",
            header.version
        ));
    }
    let mut out = CarContents {
        roots: header.roots,
        ..CarContents::default()
    };
    while pos < bytes.len() {
        let (body, next) = match section(bytes, pos) {
            Ok(s) => s,
            Err(e) => {
                out.damage = Some(format!("at byte {pos} of {}: {e}", bytes.len()));
                break;
            }
        };
        let (cid, used) = match crate::ids::read_cid(body, "CAR block CID") {
            Ok(c) => c,
            Err(e) => {
                out.damage = Some(format!("at byte {pos}: {e}"));
                break;
            }
        };
        let data = &body[used..];
        if hash_matches(cid.hash(), data) {
            out.blocks
                .insert(cid.hash().to_bytes(), (cid, data.to_vec()));
        } else {
            out.corrupt.push(cid);
        }
        pos = next;
    }
    Ok(out)
}

/// One varint-prefixed section at `pos`: its body and the offset after it.
fn section(bytes: &[u8], pos: usize) -> Result<(&[u8], usize), String> {
    let (len, rest) = unsigned_varint::decode::u64(&bytes[pos..])
        .map_err(|e| format!("bad section length: {e}"))?;
    let start = bytes.len() - rest.len();
    let len = usize::try_from(len).map_err(|_| "section length overflows".to_string())?;
    if len == 0 {
        return Err("empty section".into());
    }
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            format!(
                "truncated: a section of {len} bytes starts at {start} but the file ends at {}",
                bytes.len()
            )
        })?;
    Ok((&bytes[start..end], end))
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

    #[test]
    fn round_trip_and_truncation() {
        let blocks: Vec<Vec<u8>> = vec![b"\xa1aa\x01".to_vec(), b"\xa1ab\x02".to_vec()];
        let mut buf = Vec::new();
        let mut w = CarWriter::new(&mut buf, &[cid_of(&blocks[0])]).unwrap();
        for b in &blocks {
            w.add(&cid_of(b), b).unwrap();
        }
        assert_eq!(w.finish().unwrap(), (2, 8));
        let car = read_car(&buf).unwrap();
        assert_eq!(car.roots, vec![cid_of(&blocks[0])]);
        assert_eq!(car.blocks.len(), 2);
        assert!(car.damage.is_none() && car.corrupt.is_empty());
        let cut = read_car(&buf[..buf.len() - 2]).unwrap();
        assert_eq!(cut.blocks.len(), 1);
        assert!(cut.damage.unwrap().contains("truncated"));
        let mut flipped = buf.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(read_car(&flipped).unwrap().corrupt.len(), 1);
    }
}
