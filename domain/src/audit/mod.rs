//! The tamper-evident log: canonical encoding, the per-stream hash chain, its verifier, and
//! what auditors work with: the export format, digests of the chain heads, and replay.
//!
//! The algorithm is written down in `docs/AUDIT.md` for auditors who re-implement it; this
//! module is the reference implementation and must stay byte-for-byte faithful to that text.

pub mod books;
pub mod canonical;
pub mod chain;
pub mod digest;
pub mod export;
pub mod replay;
pub mod verify;

pub use chain::{EventRecord, GENESIS_HASH, canonical_event, link_hash, seal};
pub use verify::{
    ChainVerifier, Fault, FaultKind, OwnedRow, StoredRow, VerifyReport, sort_streams,
};
