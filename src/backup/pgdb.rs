//! The index database itself, for a restore into a server where it does not exist yet (the
//! disaster case: a new machine, or a dropped database): asked and created through the
//! server's maintenance database `postgres`, with the DSN's user, password and TLS settings.

use std::time::Duration;

use crate::config::redact_dsn;

/// The maintenance database every PostgreSQL cluster has (`initdb` creates it; `createdb`
/// connects to it too).
const MAINTENANCE_DB: &str = "postgres";

/// A connection to the maintenance database of the DSN's server, and the DSN's database name.
async fn maintenance(
    dsn: &str,
    password: Option<&str>,
    timeout: Duration,
) -> Result<(tokio_postgres::Client, String), String> {
    let (plain, tls) = crate::tls::split_pg_dsn(dsn)?;
    let mut config: tokio_postgres::Config = plain
        .parse()
        .map_err(|e| format!("invalid DSN {}: {e}", redact_dsn(dsn)))?;
    if let Some(p) = password {
        config.password(p);
    }
    if config.get_user().is_none() {
        config.user(std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into()));
    }
    // libpq's default database name is the user name.
    let name = match config.get_dbname() {
        Some(d) => d.to_string(),
        None => config.get_user().unwrap_or("postgres").to_string(),
    };
    config.dbname(MAINTENANCE_DB);
    config.application_name("ceramic-audit restore");
    config.connect_timeout(timeout);
    let (client, _driver) = tokio::time::timeout(timeout, crate::tls::connect_pg(&config, &tls))
        .await
        .map_err(|_| format!("timed out connecting to {}", redact_dsn(dsn)))?
        .map_err(|e| {
            format!(
                "cannot connect to the maintenance database {MAINTENANCE_DB:?} of {}: {e}",
                redact_dsn(dsn)
            )
        })?;
    Ok((client, name))
}

/// Whether the DSN's database exists on its server.
pub async fn exists(dsn: &str, password: Option<&str>, timeout: Duration) -> Result<bool, String> {
    let (client, name) = maintenance(dsn, password, timeout).await?;
    let sql = "SELECT 1 FROM pg_database WHERE datname = $1";
    client
        .query_opt(sql, &[&name])
        .await
        .map(|r| r.is_some())
        .map_err(|e| format!("{}: {sql}: {e}", redact_dsn(dsn)))
}

/// `CREATE DATABASE` for the DSN's database (owned by the DSN's user, the server's defaults for
/// encoding and locale, as `createdb` would).
pub async fn create(
    dsn: &str,
    password: Option<&str>,
    timeout: Duration,
) -> Result<String, String> {
    let (client, name) = maintenance(dsn, password, timeout).await?;
    let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    client.batch_execute(&sql).await.map_err(|e| {
        format!(
            "{}: {sql}: {}",
            redact_dsn(dsn),
            crate::tls::error_chain(&e)
        )
    })?;
    Ok(name)
}
