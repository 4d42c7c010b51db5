//! A Postgres index as an audit source: fingerprints pushed down into SQL, or, in download mode
//! (and per model once the audit switches it), every row's hash downloaded into a compact
//! store ([`super::hashed`]) and fingerprinted here.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;

use super::hashed::HashedKeys;
use super::PgSource;
use crate::config::NodeConfig;
use crate::recon::{Answer, Entry, Query};
use crate::source::rows::RowContent;
use crate::source::{
    invalid_rows, Backend, IndexHash, InvalidRow, Mode, ModelState, NodeStats, Reading, RowCheck,
    SourceError, TableInfo,
};

pub struct PgIndex {
    pg: PgSource,
    mode: Mode,
    /// Stream ids and row hashes of the models downloaded so far.
    hashed: HashMap<String, HashedKeys>,
    /// Models downloaded although the mode is push-down (switched by the audit when most of a
    /// model's ranges differ).
    download_models: HashSet<String>,
}

impl PgIndex {
    /// Connects and lists the node's models.
    pub async fn open(
        config: &NodeConfig,
        dsn: &str,
        reading: &Reading,
    ) -> Result<(Self, BTreeMap<String, ModelState>), SourceError> {
        let password = config
            .password
            .read(&config.name)
            .map_err(|message| SourceError::Node {
                node: config.name.clone(),
                message,
            })?;
        let mut pg = PgSource::connect(config, dsn, password, reading).await?;
        let models = pg.models().await?;
        let index = Self {
            pg,
            mode: reading.mode,
            hashed: HashMap::new(),
            download_models: HashSet::new(),
        };
        Ok((index, models))
    }

    /// The downloaded row hashes of `model`, downloading them on first use.
    async fn hashed(&mut self, model: &str, table: &TableInfo) -> Result<&HashedKeys, SourceError> {
        if !self.hashed.contains_key(model) {
            let rows = self.pg.download_hashes(model, table).await?;
            let model_owned = model.to_string();
            let store = tokio::task::spawn_blocking(move || HashedKeys::new(&model_owned, rows))
                .await
                .map_err(|e| {
                    self.pg
                        .node_error(format!("sorting downloaded rows stopped: {e}"))
                })?;
            self.hashed.insert(model.to_string(), store);
        }
        self.hashed.get(model).ok_or_else(|| {
            self.pg
                .node_error("internal: download store vanished".into())
        })
    }

    /// A round in download mode: fingerprints and digests from the downloaded row hashes,
    /// entries read back from the node (same snapshot) for the rows asked.
    async fn answer_downloaded(
        &mut self,
        model: &str,
        table: &TableInfo,
        batch: &[Query],
    ) -> Result<Vec<Answer<IndexHash>>, SourceError> {
        let store = self.hashed(model, table).await?;
        // Every entry the round asks for (per entries query: the streams chosen by their row
        // hashes), read back in one statement.
        let chosen: Vec<HashSet<String>> = batch
            .iter()
            .filter_map(|q| match q {
                Query::Entries { range, only } => Some(
                    store
                        .rows(range)
                        .into_iter()
                        .filter(|(_, h)| only.as_ref().is_none_or(|set| set.contains(h)))
                        .map(|(s, _)| s)
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        let mut answers: Vec<Option<Answer<IndexHash>>> = batch
            .iter()
            .map(|q| match q {
                Query::Bounds { range } => {
                    let s = store.summary(range, true);
                    Some(Answer::Bounds {
                        count: s.fingerprint.count,
                        bounds: s.bounds,
                    })
                }
                Query::Summary { range, bounds } => {
                    Some(Answer::Summary(store.summary(range, *bounds)))
                }
                Query::Digests { range } => Some(Answer::Digests(store.digests(range))),
                Query::Entries { .. } => None,
            })
            .collect();
        let wanted: Vec<String> = chosen.iter().flatten().cloned().collect();
        let mut fetched: Vec<Entry> = if wanted.is_empty() {
            Vec::new()
        } else {
            self.pg.rows_of(model, table, &wanted).await?
        };
        fetched.sort_by(|a, b| a.key.cmp(&b.key));
        let mut chosen = chosen.into_iter();
        for (q, slot) in batch.iter().zip(&mut answers) {
            let Query::Entries { range, .. } = q else {
                continue;
            };
            let streams = chosen.next().unwrap_or_default();
            let lo = fetched.partition_point(|e| e.key < range.start);
            let hi = range.end.as_ref().map_or(fetched.len(), |end| {
                fetched.partition_point(|e| e.key < *end)
            });
            *slot = Some(Answer::Entries(
                fetched[lo..hi.max(lo)]
                    .iter()
                    .filter(|e| streams.contains(&e.key.stream()))
                    .cloned()
                    .collect(),
            ));
        }
        Ok(answers.into_iter().flatten().collect())
    }
}

#[async_trait]
impl Backend for PgIndex {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn mode(&self) -> Mode {
        self.mode
    }

    fn tls(&self) -> Option<&str> {
        Some(&self.pg.tls)
    }

    fn stats(&self) -> NodeStats {
        NodeStats {
            rows: self.pg.rows_scanned,
            bytes_received: self.pg.bytes_received,
            statements: self.pg.statements,
            millis: self.pg.busy.as_millis() as u64,
        }
    }

    fn pushes_down(&self, model: &str) -> bool {
        self.mode == Mode::Pushdown && !self.download_models.contains(model)
    }

    fn download_model(&mut self, model: &str) {
        self.download_models.insert(model.to_string());
    }

    async fn entries(&mut self, model: &str, table: &TableInfo) -> Result<Vec<Entry>, SourceError> {
        self.pg.download(model, table).await
    }

    async fn answer(
        &mut self,
        model: &str,
        table: &TableInfo,
        batch: &[Query],
    ) -> Result<Vec<Answer<IndexHash>>, SourceError> {
        if self.pushes_down(model) {
            self.pg.answer(model, table, batch).await
        } else {
            self.answer_downloaded(model, table, batch).await
        }
    }

    async fn invalid_rows(
        &mut self,
        model: &str,
        check: RowCheck,
    ) -> Result<Vec<InvalidRow>, SourceError> {
        let suspects = self.pg.suspicious_rows(model, check).await?;
        Ok(invalid_rows(&suspects))
    }

    fn invalid_rows_not_listed(&self, model: &str) -> u64 {
        self.pg.invalid_rows_not_listed(model)
    }

    async fn end_snapshot(&mut self) -> Result<(), SourceError> {
        self.pg.end_snapshot().await
    }

    async fn begin_recheck(&mut self) -> Result<(), SourceError> {
        self.pg.refresh_snapshot().await
    }

    async fn recheck(
        &mut self,
        model: &str,
        table: &TableInfo,
        streams: &[String],
    ) -> Result<Vec<Entry>, SourceError> {
        self.pg.rows_of(model, table, streams).await
    }

    async fn contents(
        &mut self,
        model: &str,
        streams: &[String],
    ) -> Result<Vec<RowContent>, SourceError> {
        self.pg.contents(model, streams).await
    }

    async fn index_tips(
        &mut self,
        model: &str,
        sample: Option<u64>,
    ) -> Result<Vec<(String, String)>, SourceError> {
        self.pg.tips(model, sample).await
    }

    async fn changed_since(
        &mut self,
        model: &str,
        since_ms: Option<i64>,
    ) -> Result<(Vec<String>, Option<i64>), SourceError> {
        self.pg.changed_since(model, since_ms).await
    }

    fn forget(&mut self, model: &str) {
        self.hashed.remove(model);
    }

    async fn close(self: Box<Self>) {
        self.pg.close().await;
    }
}
