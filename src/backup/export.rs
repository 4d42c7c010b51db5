//! The blocks layer: every block each stream's log needs, fetched from the node's IPFS with up
//! to `concurrency` requests in flight, checked against its CID and appended to one CAR. Only
//! blocks `refs/local` lists are asked for: a block the node lacks is a finding, never a
//! network fetch (js-ipfs ignores `offline=true`, ipfs.rs).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use cid::Cid;
use futures::stream::{FuturesUnordered, StreamExt};

use super::car::{hash_matches, CarWriter};
use super::ipfs::Ipfs;
use super::manifest::MissingBlock;
use super::needs::{expand, Need};
use super::statestore::StoredStream;
use super::BackupError;

/// What was exported.
pub struct Exported {
    pub blocks: u64,
    pub bytes: u64,
    pub missing: Vec<MissingBlock>,
}

/// One block to fetch, with the stream it was first needed for (named in a finding).
struct Job {
    stream: Arc<str>,
    need: Need,
}

/// Writes `car_path` with every block the streams' logs need. `progress(done, queued)` is
/// called after each block.
pub async fn export(
    ipfs: &Ipfs,
    local: &HashSet<Vec<u8>>,
    streams: &BTreeMap<String, StoredStream>,
    car_path: &Path,
    concurrency: usize,
    progress: &dyn Fn(u64, u64),
) -> Result<Exported, BackupError> {
    let werr =
        |e: std::io::Error| BackupError::new(format!("cannot write {}: {e}", car_path.display()));
    let file = std::fs::File::create(car_path).map_err(werr)?;
    let roots: Vec<Cid> = streams
        .values()
        .filter_map(|s| s.log.last().and_then(|t| crate::ids::parse_cid(t).ok()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut car = CarWriter::new(BufWriter::new(file), &roots).map_err(werr)?;
    let mut missing = Vec::new();
    let mut queue: Vec<Job> = Vec::new();
    for (stream, state) in streams.iter().rev() {
        let stream: Arc<str> = Arc::from(stream.as_str());
        for c in state.log.iter().rev() {
            match crate::ids::parse_cid(c) {
                Ok(cid) => queue.push(Job {
                    stream: stream.clone(),
                    need: Need::commit(cid),
                }),
                Err(e) => missing.push(MissingBlock {
                    stream: stream.to_string(),
                    cid: c.clone(),
                    role: "commit".into(),
                    reason: format!("not a CID: {e}"),
                }),
            }
        }
    }
    // Multihashes already asked for (IPFS keys blocks by multihash: one fetch per block, however
    // many streams or codecs name it).
    let mut asked: HashSet<Vec<u8>> = HashSet::new();
    let mut in_flight = FuturesUnordered::new();
    let (mut done, mut queued) = (0u64, queue.len() as u64);
    loop {
        while in_flight.len() < concurrency.max(1) {
            let Some(job) = queue.pop() else { break };
            let mh = job.need.cid.hash().to_bytes();
            if !asked.insert(mh.clone()) {
                continue;
            }
            if !local.contains(&mh) {
                missing.push(missing_block(
                    &job,
                    "the node's IPFS does not hold it (not fetched)",
                ));
                continue;
            }
            in_flight.push(async move {
                let got = ipfs.block_get(&job.need.cid).await;
                (job, got)
            });
        }
        let Some((job, got)) = in_flight.next().await else {
            break;
        };
        done += 1;
        let data = match got {
            Ok(d) => d,
            Err(e) => {
                missing.push(missing_block(&job, &e));
                continue;
            }
        };
        if !hash_matches(job.need.cid.hash(), &data) {
            missing.push(missing_block(
                &job,
                "the node returned bytes that do not hash to the CID",
            ));
            continue;
        }
        car.add(&job.need.cid, &data).map_err(werr)?;
        match expand(&job.need, &data) {
            Ok(more) => {
                queued += more.len() as u64;
                queue.extend(more.into_iter().map(|need| Job {
                    stream: job.stream.clone(),
                    need,
                }));
            }
            Err(e) => missing.push(missing_block(
                &job,
                &format!("its links cannot be read: {e}"),
            )),
        }
        progress(done, queued);
    }
    let (blocks, bytes) = car.finish().map_err(werr)?;
    Ok(Exported {
        blocks,
        bytes,
        missing,
    })
}

fn missing_block(job: &Job, reason: &str) -> MissingBlock {
    MissingBlock {
        stream: job.stream.to_string(),
        cid: job.need.cid.to_string(),
        role: job.need.role.as_str().into(),
        reason: reason.into(),
    }
}
