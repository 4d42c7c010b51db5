//! Ceramic-aware backups of one node: the ComposeDB index, the js-ceramic state store and the
//! IPFS blocks every stream's log needs, taken in that order (each later layer covers what the
//! earlier ones reference; ceramic-interfaces.md §7.2), a `manifest.json`, a verification that
//! checks a backup the way the audit checks a node, and a restore into a stopped node.
//!
//! One module per job: [`take`] (the backup), [`index`], [`statestore`], [`needs`] (which
//! blocks a log needs), [`export`] (fetching them), [`ipfs`], [`car`], [`pgdb`] (creating the index database), [`ceramic_one`], [`manifest`], [`verify`],
//! [`restore`].

pub mod car;
pub mod ceramic_one;
pub mod export;
pub mod index;
pub mod ipfs;
pub mod manifest;
pub mod needs;
pub mod pgdb;
pub mod restore;
pub mod statestore;
pub mod take;
pub mod verify;

/// A backup, verification or restore that could not run; the message names the node, layer,
/// file or command.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackupError(pub String);

impl BackupError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
