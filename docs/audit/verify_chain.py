#!/usr/bin/env python3
"""Independent verifier of a chaos event store, written from docs/AUDIT.md alone.

Usage: python3 verify_chain.py PATH/TO/chaos.db

Reads the SQLite file read-only with Python's standard library, checks every stream's
sequence continuity and hash chain exactly as docs/AUDIT.md describes, and prints either
"OK: N events in M streams" (exit 0) or one line per broken stream naming its first bad
sequence (exit 4). It shares no code with the platform.
"""
import hashlib
import json
import sqlite3
import sys

GENESIS = "0" * 64
HASHED_METADATA = ("actor", "actor_role", "command_id", "correlation_id",
                   "event_id", "recorded_at", "source")
MAX_SAFE = 2 ** 53 - 1


def canonical(value):
    """Canonical JSON (RFC 8785 restricted to integers) of a parsed value."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if abs(value) > MAX_SAFE:
            raise ValueError("integer outside the safe range")
        return str(value)
    if isinstance(value, float):
        raise ValueError("floats are not allowed")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical(value[k])
                              for k in keys) + "}"
    raise ValueError("unexpected JSON value")


def check(row, expected_sequence, prev_hash):
    """Returns (hash, None) when the row verifies, else (None, problem)."""
    agg_type, agg_id, sequence, event_type, event_version, payload_text, metadata_text = row
    if sequence != expected_sequence:
        return None, f"expected sequence {expected_sequence}, found {sequence}"
    try:
        payload = json.loads(payload_text)
        if canonical(payload) != payload_text:
            return None, "payload is not in canonical form"
        metadata = json.loads(metadata_text)
        if canonical(metadata) != metadata_text or set(metadata) != set(HASHED_METADATA) | {"prev_hash", "hash"}:
            return None, "metadata is not in canonical form"
    except ValueError as e:
        return None, f"malformed: {e}"
    if metadata["prev_hash"] != prev_hash:
        return None, "prev_hash does not match the previous hash"
    hashed = {
        "aggregate_id": agg_id,
        "aggregate_type": agg_type,
        "event_type": event_type,
        "event_version": event_version,
        "metadata": {k: metadata[k] for k in HASHED_METADATA},
        "payload": payload,
        "sequence": sequence,
    }
    digest = hashlib.sha256(bytes.fromhex(prev_hash) + canonical(hashed).encode("utf-8")).hexdigest()
    if digest != metadata["hash"]:
        return None, f"hash {metadata['hash']} does not match the content, which hashes to {digest}"
    return digest, None


def main(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    streams = {}   # (type, id) -> (next sequence, head hash) or None once broken
    faults = []
    events = 0
    for row in db.execute("SELECT aggregate_type, aggregate_id, sequence, event_type, "
                          "event_version, payload, metadata FROM events ORDER BY rowid"):
        events += 1
        key = (row[0], row[1])
        state = streams.setdefault(key, (1, GENESIS))
        if state is None:
            continue
        digest, problem = check(row, state[0], state[1])
        if problem:
            faults.append((key, state[0], problem))
            streams[key] = None
        else:
            streams[key] = (state[0] + 1, digest)
    if not faults:
        print(f"OK: {events} events in {len(streams)} streams")
        return 0
    for (agg_type, agg_id), sequence, problem in sorted(faults):
        print(f"{agg_type}/{agg_id} at sequence {sequence}: {problem}")
    return 4


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
