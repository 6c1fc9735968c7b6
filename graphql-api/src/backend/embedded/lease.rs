//! One `chaos serve` per store: the lease on the store's workflow and demo fleet.
//!
//! Two servers on one store would each run the workflow against their own fleet, splitting a
//! run's steps between fleets and recording recoveries that never happened. So the server
//! that runs the workflow holds a lease, a row of the store file (`serve_lease`): who holds
//! it (a process, its host, its address) and until when. It renews the lease every
//! [`RENEW_EVERY`] for [`TERM`]. A second server is refused with the holder's name, unless
//! the lease has run out, or its holder is a process of this host that no longer runs (a
//! server killed outright leaves a lease that would otherwise block a restart for [`TERM`]),
//! or it is told to take over (`--take-over`): then the holder sees at its next renewal that
//! it lost the lease and stops. Commands from the CLI need no lease; they only append to the
//! log, which every server follows.

use std::net::SocketAddr;
use std::time::Duration;

use sqlx::{Row, SqlitePool};

/// How long a lease lasts unrenewed.
pub const TERM: Duration = Duration::from_secs(10);

/// How often its holder renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS serve_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    addr TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
)";

/// Who holds the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// Its host (name and boot).
    pub host: String,
    /// Where it listens.
    pub addr: String,
    /// Since when it holds the lease (Unix milliseconds).
    pub since_ms: i64,
}

/// Why the lease could not be taken or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another server holds it.
    #[error(
        "another chaos serve runs this store's workflow and demo fleet: process {} on {}, listening on {}; stop it first, or start this one with --take-over (the other stops within {} s)",
        .0.pid, .0.host, .0.addr, RENEW_EVERY.as_secs()
    )]
    Held(Holder),
    /// The store failed.
    #[error("the store's lease cannot be read or written: {0}")]
    Store(#[from] sqlx::Error),
}

/// A lease held by this process.
#[derive(Debug)]
pub struct Lease {
    pool: SqlitePool,
    holder: String,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn term_ms() -> i64 {
    i64::try_from(TERM.as_millis()).unwrap_or(i64::MAX)
}

/// This host: its name and the id of its current boot (a process id means nothing after a
/// reboot).
fn this_host() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned())
    };
    format!(
        "{} (boot {})",
        read("/proc/sys/kernel/hostname"),
        read("/proc/sys/kernel/random/boot_id")
    )
}

/// Whether process `pid` of this host still runs.
fn runs(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

impl Lease {
    /// Takes the lease for this process, listening on `addr`: refused while another server
    /// holds it, unless `take_over`.
    pub async fn acquire(
        pool: SqlitePool,
        addr: SocketAddr,
        take_over: bool,
    ) -> Result<Lease, LeaseError> {
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        let holder = uuid::Uuid::now_v7().to_string();
        let host = this_host();
        let pid = std::process::id();
        // Compare and swap on the holder seen: of two servers starting at once, one wins.
        let seen = sqlx::query(
            "SELECT holder, pid, host, addr, since_ms, expires_ms FROM serve_lease WHERE id = 1",
        )
        .fetch_optional(&pool)
        .await?;
        let now = now_ms();
        let taken = match seen {
            None => {
                sqlx::query(
                    "INSERT OR IGNORE INTO serve_lease (id, holder, pid, host, addr, since_ms, expires_ms) \
                     VALUES (1, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&holder)
                .bind(pid)
                .bind(&host)
                .bind(addr.to_string())
                .bind(now)
                .bind(now + term_ms())
                .execute(&pool)
                .await?
                .rows_affected()
                    == 1
            }
            Some(row) => {
                let current = Holder {
                    pid: row.try_get::<u32, _>("pid")?,
                    host: row.try_get("host")?,
                    addr: row.try_get("addr")?,
                    since_ms: row.try_get("since_ms")?,
                };
                let expired = row.try_get::<i64, _>("expires_ms")? <= now;
                let gone = current.host == host && !runs(current.pid);
                if !(expired || gone || take_over) {
                    return Err(LeaseError::Held(current));
                }
                if !expired && !gone {
                    tracing::warn!(
                        pid = current.pid,
                        host = %current.host,
                        addr = %current.addr,
                        "taking over the store from the server that held it: it stops at its next renewal"
                    );
                }
                let old: String = row.try_get("holder")?;
                sqlx::query(
                    "UPDATE serve_lease SET holder = ?, pid = ?, host = ?, addr = ?, since_ms = ?, expires_ms = ? \
                     WHERE id = 1 AND holder = ?",
                )
                .bind(&holder)
                .bind(pid)
                .bind(&host)
                .bind(addr.to_string())
                .bind(now)
                .bind(now + term_ms())
                .bind(old)
                .execute(&pool)
                .await?
                .rows_affected()
                    == 1
            }
        };
        if !taken {
            // Another server took it between the read and the write: it holds it now.
            return Box::pin(Self::acquire(pool, addr, false)).await;
        }
        Ok(Lease { pool, holder })
    }

    /// Extends the lease by [`TERM`]: false when this process no longer holds it (another
    /// server took over).
    pub async fn renew(&self) -> Result<bool, sqlx::Error> {
        let renewed =
            sqlx::query("UPDATE serve_lease SET expires_ms = ? WHERE id = 1 AND holder = ?")
                .bind(now_ms() + term_ms())
                .bind(&self.holder)
                .execute(&self.pool)
                .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives the lease up (a server stopping cleanly), so the next may start at once.
    pub async fn release(&self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM serve_lease WHERE id = 1 AND holder = ?")
            .bind(&self.holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Renews the lease every [`RENEW_EVERY`]; returns once it is lost (another server took
    /// over). Dropped, it renews no more.
    pub async fn keep(&self) {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            match self.renew().await {
                Ok(true) => {}
                Ok(false) => return,
                // The store is busy or failing: try again; if another server takes the
                // lease meanwhile, the next renewal says so.
                Err(e) => tracing::warn!(error = %e, "cannot renew the store's lease"),
            }
        }
    }
}
