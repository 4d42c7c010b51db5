//! What a descent cost.

use serde::Serialize;

/// What the descent cost, as every audit report shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// Round trips: batches sent (each store gets each batch once, all stores concurrently).
    pub rounds: u64,
    /// Ranges whose fingerprints were compared across the stores.
    pub ranges_compared: u64,
    /// Of those, ranges whose fingerprints differed.
    pub ranges_differing: u64,
    /// Fingerprints received, all stores together.
    pub fingerprints: u64,
    /// Ranges asked again for their first/last key after a split that separated nothing.
    pub bounds_probes: u64,
    /// Ranges compared row by row.
    pub leaf_ranges: u64,
    /// Row digests received, all stores together.
    pub digests: u64,
    /// Full entries received, all stores together.
    pub entries: u64,
    /// Bytes of queries, all stores together (per store: this ÷ number of stores).
    pub bytes_sent: u64,
    /// Bytes of answers, all stores together.
    pub bytes_received: u64,
    /// Bytes of answers per store, in store order.
    pub bytes_received_per_store: Vec<u64>,
    /// Of `bytes_received`, the full entries (key, tip, column digest) of the differing rows:
    /// the payload a report needs, beyond what identifying the differences cost.
    pub entry_bytes_received: u64,
    /// Rows each store holds in the whole key space (from the first round's answers), in store
    /// order; empty until the first round is fed.
    pub rows_per_store: Vec<u64>,
}
