//! Running a whole descent over synchronous stores.

use thiserror::Error;

use super::descent::{Descent, DescentError, DescentParams, Outcome};
use super::store::RangeStore;

/// A store failed, or the descent rejected what it answered.
#[derive(Debug, Error)]
pub enum RunError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Descent(#[from] DescentError),
    #[error("store {store}: {source}")]
    Store {
        store: usize,
        #[source]
        source: E,
    },
}

/// Runs a whole descent over synchronous stores (all of the same kind).
pub fn run_descent<S: RangeStore>(
    stores: &mut [S],
    params: DescentParams,
) -> Result<Outcome, RunError<S::Error>> {
    let mut descent = Descent::<S::Hash>::new(stores.len(), params)?;
    while let Some(batch) = descent.queries() {
        let mut answers = Vec::with_capacity(stores.len());
        for (i, store) in stores.iter_mut().enumerate() {
            answers.push(
                store
                    .answer(&batch)
                    .map_err(|source| RunError::Store { store: i, source })?,
            );
        }
        descent.feed(answers)?;
    }
    Ok(descent.finish())
}
