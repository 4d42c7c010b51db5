//! Packed answers: aggregates come back as one `bytea` of big-endian integers.

/// Big-endian integers packed back to back by `int4send`/`int8send`, read in order.
pub(super) struct Packed<'a>(pub(super) &'a [u8]);

impl Packed<'_> {
    pub(super) fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        if self.0.len() < N {
            return Err(format!(
                "packed answer ends inside {what} ({} bytes left, {N} needed)",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    pub(super) fn i32(&mut self, what: &str) -> Result<i32, String> {
        self.take::<4>(what).map(i32::from_be_bytes)
    }

    pub(super) fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.take::<8>(what).map(u64::from_be_bytes)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
