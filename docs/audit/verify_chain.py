#!/usr/bin/env python3
"""Independent verifier of a chaos event log, written from docs/AUDIT.md alone.

Usage: python3 verify_chain.py PATH [--digest DIGEST.json]

PATH is an embedded store (an SQLite file, read read-only with Python's standard library) or
an export (`chaos audit export`, a file whose name ends in `.jsonl`). Checks every stream's
sequence continuity and hash chain exactly as docs/AUDIT.md describes, and prints either
"OK: N events in M streams" (exit 0) or one line per broken stream naming its first bad
sequence (exit 4); it also checks that the books of every ledger open, close and continue one
another as the document's "Ledgers and books" says. With --digest, also checks the log against the chain heads of an earlier
digest and prints one line per stream that departs from it (exit 5 if the chain itself is
intact). It shares no code with the platform.
"""
import hashlib
import json
import sqlite3
import sys

GENESIS = "0" * 64
HASHED_METADATA = {"actor", "actor_role", "command_id", "correlation_id",
                   "event_id", "recorded_at", "source"}
OPTIONAL_METADATA = {"command"}
MAX_SAFE = 2 ** 53 - 1
LEDGERS = {"halt-switch", "limits", "webhooks", "schedules", "blackouts", "api-keys", "users"}


MAX_DEPTH = 127  # arrays and objects nested deeper make a payload malformed


def canonical(value, depth=0):
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
    if isinstance(value, (list, dict)) and depth >= MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        return "[" + ",".join(canonical(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical(value[k], depth + 1)
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
        members = set(metadata) - OPTIONAL_METADATA
        if (canonical(metadata) != metadata_text or members != HASHED_METADATA | {"prev_hash", "hash"}
                or not all(isinstance(v, str) for v in metadata.values())):
            return None, "metadata is not in canonical form"
    except (ValueError, RecursionError) as e:
        return None, f"malformed: {e}"
    if metadata["prev_hash"] != prev_hash:
        return None, "prev_hash does not match the previous hash"
    hashed = {
        "aggregate_id": agg_id,
        "aggregate_type": agg_type,
        "event_type": event_type,
        "event_version": event_version,
        "metadata": {k: v for k, v in metadata.items() if k not in ("prev_hash", "hash")},
        "payload": payload,
        "sequence": sequence,
    }
    digest = hashlib.sha256(bytes.fromhex(prev_hash) + canonical(hashed).encode("utf-8")).hexdigest()
    if digest != metadata["hash"]:
        return None, f"hash {metadata['hash']} does not match the content, which hashes to {digest}"
    return digest, None


def continuing_book(agg_type, agg_id):
    """Whether the stream is a book after the first of a platform ledger."""
    ledger, dot, number = agg_id.rpartition(".")
    return (agg_type == "Platform" and dot and ledger in LEDGERS and number.isdigit()
            and not number.startswith("0") and int(number) > 1)


def is_book(agg_id):
    ledger, dot, number = agg_id.rpartition(".")
    return bool(dot and ledger and number.isdigit() and not number.startswith("0"))


def observe_book(row, sequence, opens, closes):
    """Checks a verified row against the rules of books; returns a problem or None."""
    agg_type, agg_id, _, event_type, _, payload_text, _ = row
    key = (agg_type, agg_id)
    if key in closes:
        at, nxt = closes[key]
        return f"the book was closed at sequence {at} (continued in {nxt}): nothing may follow"
    payload = json.loads(payload_text)
    if event_type == "BookOpened":
        if sequence != 1:
            return "a book is opened only by its first event"
        previous = payload.get("BookOpened", {}).get("previous")
        if not isinstance(previous, dict) or set(previous) != {"stream", "sequence", "hash"}:
            return "the opening names no stream it continues"
        opens[key] = previous
    elif event_type == "BookClosed":
        nxt = payload.get("BookClosed", {}).get("next")
        if not isinstance(nxt, str):
            return "the closing names no book that continues it"
        closes[key] = (sequence, nxt)
    elif sequence == 1 and continuing_book(agg_type, agg_id):
        return f"a book after the first of its ledger begins with its opening, not {event_type}"
    return None


def book_links(streams, opens, closes):
    """The faults of openings and closings that do not name each other: [(key, seq, problem)]."""
    faults = []
    for key, previous in opens.items():
        if streams.get(key) is None:
            continue  # broken already
        prev_key = (key[0], previous["stream"])
        if prev_key not in streams:
            faults.append((key, 1, f"it continues {previous['stream']}, which is not in the log"))
            continue
        state = streams[prev_key]
        if state is None:
            continue
        if (state[0] - 1, state[1]) != (previous["sequence"], previous["hash"]):
            faults.append((key, 1, f"it continues {previous['stream']} after sequence "
                           f"{previous['sequence']} (hash {previous['hash']}), but that stream "
                           f"ends at sequence {state[0] - 1} (hash {state[1]})"))
        elif is_book(previous["stream"]):
            closing = closes.get(prev_key)
            if closing is None:
                faults.append((key, 1, f"it continues {previous['stream']}, which is not closed"))
            elif closing[1] != key[1]:
                faults.append((key, 1, f"it continues {previous['stream']}, whose closing names {closing[1]}"))
    for key, (at, nxt) in closes.items():
        next_key = (key[0], nxt)
        if streams.get(key) is None or streams.get(next_key) is None:
            continue
        if opens.get(next_key, {}).get("stream") != key[1]:
            faults.append((key, at, f"its closing names {nxt}, which does not continue it"))
    return faults


COLUMNS = ("aggregate_type", "aggregate_id", "sequence", "event_type", "event_version",
           "payload", "metadata")


def store_rows(path):
    """Yields (row, the first column that is not UTF-8 text or None). A damaged column is read
    with its bad bytes replaced, so that its stream is known."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.text_factory = bytes
    for stored in db.execute("SELECT aggregate_type, aggregate_id, sequence, event_type, "
                             "event_version, payload, metadata FROM events ORDER BY rowid"):
        row, not_text = [], None
        for column, value in zip(COLUMNS, stored):
            if column != "sequence":
                try:
                    value = value.decode("utf-8")
                except (AttributeError, UnicodeDecodeError):
                    not_text = not_text or column
                    value = value.decode("utf-8", "replace") if isinstance(value, bytes) else ""
            row.append(value)
        yield tuple(row), not_text


RECORD = {"aggregate_id", "aggregate_type", "event_type", "event_version", "metadata",
          "payload", "sequence"}


def export_rows(path, bad_lines):
    """Yields (row, None) for every line that is exactly the canonical line of a record, ended
    by a line feed; every other line is a bad line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                if not raw.endswith(b"\n"):
                    raise ValueError("no line feed at its end: the file is cut short")
                line = raw[:-1].decode("utf-8")
                r = json.loads(line)
                if not isinstance(r, dict) or set(r) != RECORD or type(r["sequence"]) is not int \
                        or not all(isinstance(r[k], str) for k in RECORD - {"sequence"}):
                    raise ValueError("not the export record's members")
                if canonical(r) != line:
                    raise ValueError("a record, but not in canonical form")
                yield (r["aggregate_type"], r["aggregate_id"], r["sequence"], r["event_type"],
                       r["event_version"], r["payload"], r["metadata"]), None
            except (ValueError, RecursionError) as e:
                bad_lines.append((number, f"not an export record: {e}"))


def main(path, digest_path=None):
    digest = None
    if digest_path:
        with open(digest_path, encoding="utf-8") as f:
            digest = json.load(f)
        if digest.get("format") != "chaos-audit-digest" or digest.get("version") != 1:
            sys.exit(f"{digest_path}: not a chaos-audit-digest version 1 document")
    wanted = {(h["aggregate_type"], h["aggregate_id"]): h["sequence"]
              for h in (digest or {}).get("streams", [])}
    seen = {}      # (type, id) -> hash at the digest's sequence
    streams = {}   # (type, id) -> (next sequence, head hash) or None once broken
    broken_at = {}
    opens = {}     # (type, id) -> the stream its opening continues
    closes = {}    # (type, id) -> (sequence of its closing, the book it names)
    faults = []
    bad_lines = []
    events = 0
    rows = export_rows(path, bad_lines) if path.endswith(".jsonl") else store_rows(path)
    for row, not_text in rows:
        events += 1
        key = (row[0], row[1])
        state = streams.setdefault(key, (1, GENESIS))
        if state is None:
            continue
        if not_text:
            digest_hash, problem = None, f"the {not_text} column is not UTF-8 text"
        else:
            digest_hash, problem = check(row, state[0], state[1])
        if not problem:
            problem = observe_book(row, state[0], opens, closes)
        if problem:
            faults.append((key, state[0], problem))
            broken_at[key] = state[0]
            streams[key] = None
        else:
            streams[key] = (state[0] + 1, digest_hash)
            if wanted.get(key) == state[0]:
                seen[key] = digest_hash
    for key, sequence, problem in book_links(streams, opens, closes):
        if key not in broken_at:  # the first problem of a stream is the one reported
            faults.append((key, sequence, problem))
            broken_at[key] = sequence
    for key in broken_at:
        streams[key] = None
    code = 0
    if not faults and not bad_lines:
        print(f"OK: {events} events in {len(streams)} streams")
    else:
        for (agg_type, agg_id), sequence, problem in sorted(faults):
            print(f"{agg_type}/{agg_id} at sequence {sequence}: {problem}")
        for number, problem in bad_lines:
            print(f"line {number}: {problem}")
        code = 4
    for head in (digest or {}).get("streams", []):
        key = (head["aggregate_type"], head["aggregate_id"])
        n = head["sequence"]
        name = f"{key[0]}/{key[1]}"
        if key in broken_at and broken_at[key] <= n:
            continue  # reported above
        if key not in streams:
            print(f"{name} at sequence 1: stream missing")
        elif key not in seen:
            last = (broken_at[key] if key in broken_at else streams[key][0]) - 1
            print(f"{name} at sequence {last + 1}: truncated")
        elif seen[key] != head["hash"]:
            print(f"{name} at sequence {n}: rewritten")
        else:
            continue
        code = code or 5
    return code


if __name__ == "__main__":
    args = sys.argv[1:]
    digest_file = None
    if len(args) == 3 and args[1] == "--digest":
        digest_file = args[2]
        args = args[:1]
    if len(args) != 1:
        sys.exit(__doc__)
    sys.exit(main(args[0], digest_file))
