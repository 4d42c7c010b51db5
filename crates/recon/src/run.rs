//! Driving a [`Descent`] over synchronous stores, in memory: the benchmark, the tests and the
//! ceramic-one comparison use it; async drivers (Postgres, HTTP) feed the state machine
//! themselves.

use thiserror::Error;

use super::descent::{Descent, DescentError, DescentParams, Outcome};
use super::sizing::SizeHint;
use super::split::union_bounds;
use super::store::{Bounds, RangeStore};

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
    let sizes: Option<Vec<(u64, Bounds)>> = if params.sized_first_level {
        stores.iter_mut().map(RangeStore::size).collect()
    } else {
        None
    };
    let mut descent = match sizes {
        Some(sizes) => {
            let hint = SizeHint {
                rows_per_store: sizes.iter().map(|(n, _)| *n).collect(),
                hull: union_bounds(sizes.iter().filter_map(|(_, b)| b.as_ref())),
                expected_diffs: params.expected_diffs,
            };
            // The first level cut at the largest store's key quantiles, where it can list them.
            let points =
                Descent::<S::Hash>::plan_for(stores.len(), &params, &hint).and_then(|plan| {
                    let largest = (0..stores.len()).max_by_key(|&i| hint.rows_per_store[i])?;
                    stores[largest].quantiles(plan.first)
                });
            Descent::<S::Hash>::sized_at(stores.len(), params, &hint, points)?
        }
        None => Descent::<S::Hash>::new(stores.len(), params)?,
    };
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
