//! SQL text shared by every statement: quoting, the canonical columns text of a row, its
//! digest and row hash (the same expressions in push-down and download, so both agree), and
//! sums wrapped to 64 bits.

use super::PgSource;
use crate::source::Compare;

pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(super) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// SQL building the canonical columns text of `rows.rs` for one row. Anchor times become epoch
/// milliseconds through `date_part` (a float8, exact to well under a millisecond for any
/// Ceramic time): `extract` computes in numeric and costs 0.3 µs a row more.
pub(super) fn columns_sql(custom: &[String]) -> String {
    let mut e = String::from(
        "coalesce(controller_did, '') || E'\\n' || coalesce(stream_content::jsonb::text, '') \
         || E'\\n' || coalesce(round(date_part('epoch', last_anchored_at) * 1000)::int8::text, '') \
         || E'\\n' || coalesce(round(date_part('epoch', first_anchored_at) * 1000)::int8::text, '')",
    );
    for c in custom {
        e.push_str(&format!(
            " || E'\\n' || coalesce({} || {}, {})",
            quote_literal(&format!("{c}=")),
            quote_ident(c),
            quote_literal(&format!("{c}!"))
        ));
    }
    e
}

/// A numeric sum of `int8` row hashes reduced mod 2^64 and shown as the `int8` with the same
/// bits (`(s mod 2^64 + 2^63) mod 2^64 − 2^63`), so it travels as 8 binary bytes.
pub(super) fn wrap_sql(sum: &str) -> String {
    format!(
        "((({sum}) % 18446744073709551616 + 27670116110564327424) % 18446744073709551616 \
          - 9223372036854775808)::int8"
    )
}

impl PgSource {
    /// SQL of the column digest (`int8`): the canonical columns text hashed, or 0 when only
    /// tips are compared.
    pub(super) fn digest_sql(&self, custom: &[String]) -> String {
        match self.compare {
            Compare::All => format!("hashtextextended({}, 0)", columns_sql(custom)),
            Compare::Tips => "0::int8".into(),
        }
    }

    /// SQL of the row hash (`int8`, `Entry::hash_input` hashed); `$1` is the model string.
    pub(super) fn hash_sql(&self, custom: &[String]) -> String {
        format!(
            "hashtextextended($1::text || E'\\n' || stream_id || E'\\n' || coalesce(tip, '') \
             || E'\\n' || {}::text, 0)",
            self.digest_sql(custom)
        )
    }
}
