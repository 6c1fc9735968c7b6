//! The embedded identity provider: users added with `chaos user add`, who sign in with a
//! password and get a short-lived access token and a rotating refresh token.
//!
//! - **Users and roles** are platform facts in the log (`UserAdded`, `UserRoleChanged`,
//!   `UserRemoved`); a token carries no role, the role is read from the platform at every
//!   request, so a demotion or removal holds from the next request on.
//! - **Passwords** are kept apart from the log, Argon2id-hashed, in the store file's
//!   `identity_passwords` table (see [`super::password`]).
//! - **Access tokens** are JWTs signed HS256 with a 256-bit key drawn once per store and kept
//!   in a file of its own beside it ([`key_file`], owner-only), never in the store's rows: a
//!   copy of the store (given to an auditor, say) cannot sign tokens. A key an older version
//!   kept in the store is moved out of it. Issuer [`ISSUER`], audience [`AUDIENCE`], the user as `sub`,
//!   their sign-in session as `sid`, valid for [`TokenPolicy::access_ttl`]. Only HS256 is
//!   accepted for them, with no leeway.
//! - **Sessions and refresh tokens.** A sign-in opens a session (`identity_sessions`) with an
//!   absolute lifetime; each refresh token (`identity_refresh_tokens`, stored as its
//!   SHA-256) is traded once for a new pair, and the store remembers which token it was
//!   traded for (its successor). A spent token presented again means it was copied, and the
//!   whole session is revoked, with one exception: the answer to a refresh can be lost (the
//!   page reloaded, the connection dropped) after the token was spent, so for
//!   [`TokenPolicy::refresh_grace`] after its use, while its successor has never been used,
//!   the spent token is traded once more and the unused successor is spent instead. Only one
//!   line of tokens stays alive either way, and a copy is still caught as soon as both holders
//!   refresh. A refresh is decided in one write transaction, so two refreshes of one token
//!   in flight at once (the reloaded page's and the one it left behind) are decided one after
//!   the other, the second by the grace. Logout revokes the session, and an access token of a revoked session is refused
//!   at once, not at its expiry.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::password::{self, PasswordError};

/// The `iss` of every token this provider signs.
pub const ISSUER: &str = "urn:chaos-platform:embedded";
/// The `aud` of every token this provider signs: this API.
pub const AUDIENCE: &str = "chaos-api";
/// How far ahead of this server's clock a token may say it was issued (clocks of one host
/// agree; this is for a token made elsewhere with the key).
const ISSUED_AHEAD_SECS: i64 = 5;

/// What every refresh token starts with.
pub const REFRESH_PREFIX: &str = "chaosr_";

/// How long tokens and sessions live.
#[derive(Debug, Clone, Copy)]
pub struct TokenPolicy {
    /// An access token's life.
    pub access_ttl: Duration,
    /// A refresh token's life when unused (a session idle longer ends).
    pub refresh_ttl: Duration,
    /// A session's life, however often it is refreshed.
    pub session_ttl: Duration,
    /// How long after its use a refresh token whose answer was lost may be traded again
    /// (while the token it was traded for is unused).
    pub refresh_grace: Duration,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(24 * 3_600),
            session_ttl: Duration::from_secs(7 * 24 * 3_600),
            refresh_grace: Duration::from_secs(60),
        }
    }
}

/// Why a sign-in, refresh or token was refused, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong name or password (which one is not said).
    #[error("wrong username or password")]
    BadCredentials,
    /// A token or refresh token that authenticates no one: why.
    #[error("{0}")]
    Refused(String),
    /// A password that breaks the policy, or could not be hashed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The store failed.
    #[error("the identity store failed: {0}")]
    Store(#[from] sqlx::Error),
    /// Signing failed, or the random source did.
    #[error("tokens cannot be issued: {0}")]
    Issue(String),
}

/// A signed-in session's credentials.
#[derive(Debug, Clone, Serialize)]
pub struct Tokens {
    /// The bearer token for requests.
    pub access_token: String,
    /// When it expires (Unix seconds).
    pub access_expires_at: i64,
    /// The one-use token that gets the next pair.
    pub refresh_token: String,
    /// When it expires (Unix seconds).
    pub refresh_expires_at: i64,
    /// The session's id.
    pub session_id: String,
}

/// An access token's claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: [`ISSUER`].
    pub iss: String,
    /// Audience: [`AUDIENCE`].
    pub aud: String,
    /// The user's name.
    pub sub: String,
    /// The session.
    pub sid: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
}

/// The embedded issuer over one store file.
#[derive(Clone)]
pub struct LocalIssuer {
    pool: SqlitePool,
    encoding: EncodingKey,
    decoding: DecodingKey,
    policy: TokenPolicy,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS identity_passwords (
    username TEXT PRIMARY KEY,
    phc TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_sessions (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_why TEXT
);
CREATE INDEX IF NOT EXISTS identity_sessions_by_user ON identity_sessions (username);
CREATE TABLE IF NOT EXISTS identity_refresh_tokens (
    sha256 TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    successor TEXT
);
";

/// Stores made before refresh tokens remembered their successor lack the column.
const ADD_SUCCESSOR: &str = "ALTER TABLE identity_refresh_tokens ADD COLUMN successor TEXT";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn random_hex() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Issue(format!("random source: {e}")))?;
    Ok(hex::encode(bytes))
}

/// A refresh token not yet stored.
fn new_refresh_token() -> Result<String, AuthError> {
    Ok(format!("{REFRESH_PREFIX}{}", random_hex()?))
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The file that holds the token-signing key of the store at `db`: `<db>.token-key`.
pub fn key_file(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".token-key");
    PathBuf::from(name)
}

/// The key in `file` (64 hex digits), if the file exists.
fn read_key(file: &Path) -> Result<Option<Vec<u8>>, AuthError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AuthError::Issue(format!(
                "the token key {} cannot be read: {e}",
                file.display()
            )));
        }
    };
    match hex::decode(text.trim()) {
        Ok(key) if key.len() == 32 => Ok(Some(key)),
        _ => Err(AuthError::Issue(format!(
            "the token key {} is not 64 hex digits",
            file.display()
        ))),
    }
}

/// The store's signing key: the one in `file`; else the one an older version kept in the
/// store's `identity_signing_key` table, moved to `file`; else a new one. Two processes
/// opening the store at once agree: the file is created only if absent, and the loser reads
/// the winner's.
async fn signing_key(pool: &SqlitePool, file: &Path) -> Result<Vec<u8>, AuthError> {
    let kept_in_store: bool = sqlx::query_scalar(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'identity_signing_key'",
    )
    .fetch_one(pool)
    .await?;
    let stored: Option<Vec<u8>> = if kept_in_store {
        sqlx::query_scalar("SELECT secret FROM identity_signing_key")
            .fetch_optional(pool)
            .await?
    } else {
        None
    };
    let key = match read_key(file)? {
        Some(key) => key,
        None => {
            let candidate = match &stored {
                Some(key) => key.clone(),
                None => hex::decode(random_hex()?).map_err(|e| AuthError::Issue(e.to_string()))?,
            };
            write_key(file, &candidate)?;
            read_key(file)?.ok_or_else(|| {
                AuthError::Issue(format!("the token key {} vanished", file.display()))
            })?
        }
    };
    if kept_in_store {
        // Out of the store, its page overwritten rather than left free with the key in it.
        sqlx::raw_sql(
            "PRAGMA secure_delete = ON; DROP TABLE IF EXISTS identity_signing_key; PRAGMA secure_delete = OFF;",
        )
        .execute(pool)
        .await?;
    }
    Ok(key)
}

/// Writes `key` to `file`, readable by its owner only, unless the file exists already.
fn write_key(file: &Path, key: &[u8]) -> Result<(), AuthError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file);
    match created {
        Ok(mut f) => f
            .write_all(format!("{}\n", hex::encode(key)).as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| {
                AuthError::Issue(format!(
                    "the token key {} cannot be written: {e}",
                    file.display()
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(AuthError::Issue(format!(
            "the token key {} cannot be created: {e}",
            file.display()
        ))),
    }
}

/// A stored refresh token, as a refresh reads it.
struct RefreshRow {
    session_id: String,
    username: String,
    session_expires: i64,
    used_at: Option<i64>,
    successor: Option<String>,
}

impl LocalIssuer {
    /// The issuer over `pool`'s store, signing with the key in `key_file` (see [`key_file`]):
    /// creates its tables, and the key on first use.
    pub async fn open(
        pool: SqlitePool,
        key_file: &Path,
        policy: TokenPolicy,
    ) -> Result<Self, AuthError> {
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        let has_successor: bool = sqlx::query_scalar(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('identity_refresh_tokens') WHERE name = 'successor'",
        )
        .fetch_one(&pool)
        .await?;
        if !has_successor {
            // Two processes opening an older store at once both try; one adds the column.
            if let Err(e) = sqlx::query(ADD_SUCCESSOR).execute(&pool).await
                && !e.to_string().contains("duplicate column")
            {
                return Err(e.into());
            }
        }
        let secret = signing_key(&pool, key_file).await?;
        Ok(LocalIssuer {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            pool,
            policy,
        })
    }

    /// Sets a user's password (replacing any) and ends their sessions.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), AuthError> {
        let password = password.to_owned();
        let phc = tokio::task::spawn_blocking(move || password::hash(&password))
            .await
            .map_err(|e| AuthError::Issue(e.to_string()))??;
        sqlx::query(
            "INSERT INTO identity_passwords (username, phc, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (username) DO UPDATE SET phc = excluded.phc, updated_at = excluded.updated_at",
        )
        .bind(username)
        .bind(phc)
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.revoke_user(username, "password changed").await
    }

    /// Forgets a user's password and ends their sessions (the user was removed).
    pub async fn forget(&self, username: &str) -> Result<(), AuthError> {
        sqlx::query("DELETE FROM identity_passwords WHERE username = ?")
            .bind(username)
            .execute(&self.pool)
            .await?;
        self.revoke_user(username, "user removed").await
    }

    /// Ends every session of a user.
    pub async fn revoke_user(&self, username: &str, why: &str) -> Result<(), AuthError> {
        sqlx::query(
            "UPDATE identity_sessions SET revoked_at = ?, revoked_why = ?
             WHERE username = ? AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(why)
        .bind(username)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Signs `username` in when `password` is theirs. `known` says whether the platform has
    /// the user; an unknown user is refused as a wrong password is, after the same work.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        known: bool,
    ) -> Result<Tokens, AuthError> {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT phc FROM identity_passwords WHERE username = ?")
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
        let usable = known && stored.is_some();
        let phc = stored.unwrap_or_else(|| password::decoy().to_owned());
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || password::verify(&password, &phc))
            .await
            .map_err(|e| AuthError::Issue(e.to_string()))?;
        if !(usable && matches) {
            return Err(AuthError::BadCredentials);
        }
        let session_id = uuid::Uuid::now_v7().to_string();
        let created = now();
        let expires = created.saturating_add(secs(self.policy.session_ttl));
        sqlx::query(
            "INSERT INTO identity_sessions (id, username, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&session_id)
        .bind(username)
        .bind(created)
        .bind(expires)
        .execute(&self.pool)
        .await?;
        let mut conn = self.pool.acquire().await?;
        self.tokens(
            &mut conn,
            username,
            &session_id,
            expires,
            &new_refresh_token()?,
        )
        .await
    }

    /// A new access token, and `refresh_token` stored, for an open session.
    async fn tokens(
        &self,
        conn: &mut SqliteConnection,
        username: &str,
        session_id: &str,
        session_expires: i64,
        refresh_token: &str,
    ) -> Result<Tokens, AuthError> {
        let issued = now();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: username.to_owned(),
            sid: session_id.to_owned(),
            iat: issued,
            exp: issued
                .saturating_add(secs(self.policy.access_ttl))
                .min(session_expires),
            jti: uuid::Uuid::now_v7().to_string(),
        };
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .map_err(|e| AuthError::Issue(e.to_string()))?;
        let refresh_expires = issued
            .saturating_add(secs(self.policy.refresh_ttl))
            .min(session_expires);
        sqlx::query(
            "INSERT INTO identity_refresh_tokens (sha256, session_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(sha256(refresh_token))
        .bind(session_id)
        .bind(refresh_expires)
        .execute(conn)
        .await?;
        Ok(Tokens {
            access_token,
            access_expires_at: claims.exp,
            refresh_token: refresh_token.to_owned(),
            refresh_expires_at: refresh_expires,
            session_id: session_id.to_owned(),
        })
    }

    /// Trades a refresh token for a new pair; the old one is spent. `known` is asked whether
    /// the session's user still exists. A spent token presented again revokes its session,
    /// unless its answer may have been lost (see the module's documentation).
    pub async fn refresh(
        &self,
        refresh_token: &str,
        known: impl FnOnce(&str) -> bool,
    ) -> Result<(String, Tokens), AuthError> {
        let digest = sha256(refresh_token.trim());
        let next = new_refresh_token()?;
        // One write transaction, taken at once: refreshes of one token (a page reloaded while
        // its renewal was on its way sends it again while the first is being answered) are
        // decided one after the other, each seeing what the one before did.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = refresh_row(&mut tx, &digest, known).await?;
        let traded = match (row.used_at, &row.successor) {
            (None, _) => spend(&mut tx, &digest, Some(&next), "used_at IS NULL").await?,
            // Spent, and its answer perhaps lost: traded again only while the token it was
            // traded for has never been used, which spends that one instead.
            (Some(used), Some(unused))
                if now().saturating_sub(used) <= secs(self.policy.refresh_grace) =>
            {
                spend(&mut tx, unused, None, "used_at IS NULL").await?
                    && spend(&mut tx, &digest, Some(&next), "used_at IS NOT NULL").await?
            }
            (Some(_), _) => false,
        };
        if !traded {
            // Spent, and what it was traded for used too: a copy of the token is replayed.
            revoke(
                &mut tx,
                &row.session_id,
                "a spent refresh token was presented again",
            )
            .await?;
            tx.commit().await?;
            tracing::warn!(
                session = %row.session_id,
                user = %row.username,
                "a spent refresh token was presented again after its successor was used: the session is revoked"
            );
            return Err(AuthError::Refused(
                "the refresh token was already used: the session is revoked, sign in again"
                    .to_owned(),
            ));
        }
        let tokens = self
            .tokens(
                &mut tx,
                &row.username,
                &row.session_id,
                row.session_expires,
                &next,
            )
            .await?;
        tx.commit().await?;
        Ok((row.username, tokens))
    }

    /// Ends a session: its access and refresh tokens authenticate nothing from now on.
    pub async fn revoke_session(&self, session_id: &str, why: &str) -> Result<(), AuthError> {
        let mut conn = self.pool.acquire().await?;
        revoke(&mut conn, session_id, why).await
    }

    /// The session a refresh token belongs to, if any.
    pub async fn session_of_refresh(
        &self,
        refresh_token: &str,
    ) -> Result<Option<String>, AuthError> {
        Ok(
            sqlx::query_scalar("SELECT session_id FROM identity_refresh_tokens WHERE sha256 = ?")
                .bind(sha256(refresh_token.trim()))
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The claims of an access token this issuer signed, if it is valid now and its session
    /// is open.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| AuthError::Refused(super::describe(&e)))?
            .claims;
        if claims.iat > now() + ISSUED_AHEAD_SECS {
            return Err(AuthError::Refused(
                "the token says it was issued in the future".to_owned(),
            ));
        }
        let row = sqlx::query(
            "SELECT username, expires_at, revoked_at, revoked_why FROM identity_sessions WHERE id = ?",
        )
        .bind(&claims.sid)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| AuthError::Refused("the token's session is unknown".to_owned()))?;
        // A session is one user's: a token naming another user with it was not issued here.
        let username: String = row.try_get("username")?;
        if username != claims.sub {
            return Err(AuthError::Refused(
                "the token's user is not its session's".to_owned(),
            ));
        }
        let revoked_at: Option<i64> = row.try_get("revoked_at")?;
        if revoked_at.is_some() {
            let why: Option<String> = row.try_get("revoked_why")?;
            return Err(AuthError::Refused(format!(
                "the token's session has ended ({})",
                why.as_deref().unwrap_or("revoked")
            )));
        }
        let expires_at: i64 = row.try_get("expires_at")?;
        if expires_at <= now() {
            return Err(AuthError::Refused(
                "the token's session has expired".to_owned(),
            ));
        }
        Ok(claims)
    }
}

/// Ends session `session_id` (if it is open), saying `why`.
async fn revoke(conn: &mut SqliteConnection, session_id: &str, why: &str) -> Result<(), AuthError> {
    sqlx::query(
        "UPDATE identity_sessions SET revoked_at = ?, revoked_why = ?
         WHERE id = ? AND revoked_at IS NULL",
    )
    .bind(now())
    .bind(why)
    .bind(session_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the refresh token whose digest is `digest` spent (keeping the time of its first use)
/// and traded for `successor`, if `condition` holds of its row; whether it did.
async fn spend(
    conn: &mut SqliteConnection,
    digest: &str,
    successor: Option<&str>,
    condition: &str,
) -> Result<bool, AuthError> {
    let done = sqlx::query(&format!(
        "UPDATE identity_refresh_tokens SET used_at = COALESCE(used_at, ?), successor = ?
         WHERE sha256 = ? AND {condition}"
    ))
    .bind(now())
    .bind(successor.map(sha256))
    .bind(digest)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The refresh token whose digest is `digest`, with its session, when it may still be traded:
/// known, its session open and unexpired, its user still there (`known`).
async fn refresh_row(
    conn: &mut SqliteConnection,
    digest: &str,
    known: impl FnOnce(&str) -> bool,
) -> Result<RefreshRow, AuthError> {
    let refused = |why: &str| AuthError::Refused(why.to_owned());
    let row = sqlx::query(
        "SELECT t.session_id, t.expires_at, t.used_at, t.successor, s.username,
                s.expires_at AS session_expires, s.revoked_at, s.revoked_why
         FROM identity_refresh_tokens t JOIN identity_sessions s ON s.id = t.session_id
         WHERE t.sha256 = ?",
    )
    .bind(digest)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| refused("the refresh token is unknown"))?;
    let expires_at: i64 = row.try_get("expires_at")?;
    let revoked_why: Option<String> = row.try_get("revoked_why")?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    let found = RefreshRow {
        session_id: row.try_get("session_id")?,
        username: row.try_get("username")?,
        session_expires: row.try_get("session_expires")?,
        used_at: row.try_get("used_at")?,
        successor: row.try_get("successor")?,
    };
    if revoked_at.is_some() {
        return Err(AuthError::Refused(format!(
            "the session has ended ({})",
            revoked_why.as_deref().unwrap_or("revoked")
        )));
    }
    if expires_at <= now() || found.session_expires <= now() {
        return Err(refused("the refresh token has expired: sign in again"));
    }
    if !known(&found.username) {
        return Err(refused("the user no longer exists"));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    use super::*;

    async fn issuer(dir: &Path) -> Arc<LocalIssuer> {
        let options = SqliteConnectOptions::new()
            .filename(dir.join("identity.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .expect("pool");
        let issuer = LocalIssuer::open(pool, &dir.join("key"), TokenPolicy::default())
            .await
            .expect("issuer");
        issuer
            .set_password("ada", "correct horse battery staple")
            .await
            .expect("password");
        Arc::new(issuer)
    }

    async fn unused(issuer: &LocalIssuer, token: &str) -> bool {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT used_at FROM identity_refresh_tokens WHERE sha256 = ?",
        )
        .bind(sha256(token))
        .fetch_optional(&issuer.pool)
        .await
        .expect("read")
        .is_some_and(|used| used.is_none())
    }

    /// A page reloaded while its renewal is on its way presents the same refresh token again
    /// while the first request is still being answered: both are answered, and the session
    /// lives on, however the two interleave.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn refreshes_racing_with_one_token_never_end_the_session() {
        let dir = tempfile::tempdir().expect("tempdir");
        let issuer = issuer(dir.path()).await;
        let mut token = issuer
            .login("ada", "correct horse battery staple", true)
            .await
            .expect("signed in")
            .refresh_token;
        for round in 0..100 {
            let racers: Vec<_> = (0..3)
                .map(|_| {
                    let (issuer, token) = (Arc::clone(&issuer), token.clone());
                    tokio::spawn(async move { issuer.refresh(&token, |_| true).await })
                })
                .collect();
            let mut answers = Vec::new();
            for racer in racers {
                let (_, tokens) = racer
                    .await
                    .expect("joined")
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
                answers.push(tokens.refresh_token);
            }
            // Exactly one of the answers is the token the session goes on with.
            let mut live = Vec::new();
            for answer in answers {
                if unused(&issuer, &answer).await {
                    live.push(answer);
                }
            }
            assert_eq!(live.len(), 1, "round {round}");
            token = live.remove(0);
        }
        // A copy of a token whose successor was used is a replay: the session ends.
        let (_, next) = issuer.refresh(&token, |_| true).await.expect("refreshed");
        issuer
            .refresh(&next.refresh_token, |_| true)
            .await
            .expect("refreshed");
        let replayed = issuer.refresh(&token, |_| true).await;
        assert!(
            matches!(&replayed, Err(AuthError::Refused(why)) if why.contains("already used")),
            "{replayed:?}"
        );
    }
}
