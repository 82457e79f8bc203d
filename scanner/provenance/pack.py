"""Fingerprint packs: an index's upstreams in one file, to build once and share (CI cache, release asset).

A pack is a ZIP archive (stored, not compressed: the fingerprints are compressed already) holding

  manifest.json           {"format": "originscan-fingerprint-pack", "version": 1, "originscan": "0.1.0",
                           "created": ISO time, "models": [{name, license, target, revision, fingerprint}],
                           "fingerprints": [{key, kind, data, data_sha256, data_size,
                                             sketch, sketch_sha256, sketch_size,
                                             heads, heads_sha256, heads_size}],
                           "upstreams": [{id, revision, state, origin, detail, checked}]}
  fingerprints/KEY.npz    a fingerprint (scanner.provenance.fingerprint, read with allow_pickle=False)
  fingerprints/KEY.sketch the screen's sketch for it
  fingerprints/KEY.heads  its head sketches (optional: a pack written before them has none, and an upstream
                          whose stored rows do not hold them is then screened on the sketch)

Every member is checked against the size and sha256 the manifest gives, every fingerprint is decoded and its
content key recomputed from its weight-file hashes before anything is written; one mismatch rejects the whole
pack with one error and the index is left as it was. `export` prints the manifest's sha256: pin it
(`index import --sha256`) to know the pack is the one that was built, since a hash inside a file only proves
the file is consistent with itself. Nothing in a pack is executed or unpickled, and nothing is extracted to disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner import __version__
from scanner.errors import UsageError
from scanner.provenance.fingerprint import Fingerprint, FingerprintError, heads_from_bytes
from scanner.provenance.index import Index, UpstreamState

FORMAT_NAME = "originscan-fingerprint-pack"
VERSION = 1
MAX_MEMBER_BYTES = 256 * 1024 * 1024  # a fingerprint is a few MB; anything near this is not one
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


class PackError(UsageError):
    """The pack cannot be imported; the message says why in one line."""


@dataclass
class PackSummary:
    models: int
    fingerprints: int
    bytes: int
    sha256: str  # of manifest.json: pin it to know the pack is the one that was built


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_pack(index: Index, path: str | os.PathLike[str]) -> PackSummary:
    path = Path(path)
    models = index.models()
    keys = sorted({m.fingerprint for m in models})
    entries = []
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for key in keys:
                data, sketch = index.blob(key)
                data_name = f"fingerprints/{key}.npz"
                entry: dict[str, Any] = {
                    "key": key,
                    "kind": index.kind(key),
                    "data": data_name,
                    "data_sha256": _sha(data),
                    "data_size": len(data),
                    "sketch": None,
                    "sketch_sha256": None,
                    "sketch_size": 0,
                }
                zf.writestr(data_name, data)
                if sketch:
                    sketch_name = f"fingerprints/{key}.sketch"
                    entry.update(sketch=sketch_name, sketch_sha256=_sha(sketch), sketch_size=len(sketch))
                    zf.writestr(sketch_name, sketch)
                heads = index.heads_bytes(key)
                if heads:
                    heads_name = f"fingerprints/{key}.heads"
                    entry.update(heads=heads_name, heads_sha256=_sha(heads), heads_size=len(heads))
                    zf.writestr(heads_name, heads)
                entries.append(entry)
            manifest = {
                "format": FORMAT_NAME,
                "version": VERSION,
                "originscan": __version__,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "models": [
                    {
                        "name": m.name,
                        "license": m.license,
                        "target": m.target,
                        "revision": m.revision,
                        "fingerprint": m.fingerprint,
                    }
                    for m in models
                ],
                "fingerprints": entries,
                "upstreams": [vars(s) for s in index.states().values()],
            }
            raw = json.dumps(manifest, indent=1, sort_keys=True).encode()
            zf.writestr("manifest.json", raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return PackSummary(len(models), len(keys), path.stat().st_size, _sha(raw))


def _read(zf: zipfile.ZipFile, name: str, limit: int, label: str) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise PackError(f"{label}: member {name!r} is missing") from None
    if info.file_size > limit:
        raise PackError(f"{label}: member {name!r} declares {info.file_size} bytes, over the {limit}-byte limit")
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise PackError(f"{label}: member {name!r} is larger than it declares")
    return data


def _field(obj: dict[str, Any], key: str, types: type | tuple[type, ...], label: str) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, types) or isinstance(value, bool):
        raise PackError(f"{label}: field {key!r} is missing or has the wrong type")
    return value


def import_pack(index: Index, path: str | os.PathLike[str], expect_sha256: str | None = None) -> PackSummary:
    """Validate the whole pack, then write it in one transaction. Raises PackError (nothing written) otherwise."""
    label = f"pack {path}"
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise PackError(f"{label}: no such file") from None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise PackError(f"{label}: not a fingerprint pack ({str(exc)[:80]})") from None
    with zf:
        try:
            raw = _read(zf, "manifest.json", MAX_MANIFEST_BYTES, label)
            if expect_sha256 and _sha(raw) != expect_sha256.strip().lower():
                raise PackError(
                    f"{label}: manifest sha256 {_sha(raw)[:16]}… is not the pinned "
                    f"{expect_sha256[:16]}… (a different or tampered pack)"
                )
            try:
                manifest = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise PackError(f"{label}: manifest.json is not valid JSON") from None
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
                raise PackError(f"{label}: not an originscan fingerprint pack")
            if manifest.get("version") != VERSION:
                raise PackError(
                    f"{label}: pack version {manifest.get('version')!r} is not supported "
                    f"(this originscan reads version {VERSION})"
                )
            fingerprints: dict[str, tuple[Fingerprint, bytes]] = {}
            for e in _field(manifest, "fingerprints", list, label):
                key = _field(e, "key", str, label)
                where = f"{label}: fingerprint {key[:16]}"
                data = _read(zf, _field(e, "data", str, where), MAX_MEMBER_BYTES, where)
                if len(data) != _field(e, "data_size", int, where) or _sha(data) != _field(
                    e, "data_sha256", str, where
                ):
                    raise PackError(f"{where}: content does not match its sha256 (corrupted or tampered)")
                sketch = None
                if e.get("sketch") is not None:
                    sketch = _read(zf, _field(e, "sketch", str, where), MAX_MEMBER_BYTES, where)
                    if len(sketch) != _field(e, "sketch_size", int, where) or _sha(sketch) != _field(
                        e, "sketch_sha256", str, where
                    ):
                        raise PackError(f"{where}: sketch does not match its sha256 (corrupted or tampered)")
                try:
                    fp = Fingerprint.from_bytes(data, sketch)
                    if e.get("heads") is not None:
                        heads = _read(zf, _field(e, "heads", str, where), MAX_MEMBER_BYTES, where)
                        if len(heads) != _field(e, "heads_size", int, where) or _sha(heads) != _field(
                            e, "heads_sha256", str, where
                        ):
                            raise PackError(f"{where}: head sketches do not match their sha256 (corrupted or tampered)")
                        fp.heads = heads_from_bytes(heads, fp.hidden)
                except FingerprintError as exc:
                    raise PackError(f"{where}: {exc}") from None
                if fp.file_hashes and fp.key() != key:
                    raise PackError(f"{where}: its weight-file hashes do not give its key (tampered)")
                fingerprints[key] = (fp, data)
            models = []
            for m in _field(manifest, "models", list, label):
                name = _field(m, "name", str, label)
                key = _field(m, "fingerprint", str, f"{label}: model {name}")
                if key not in fingerprints:
                    raise PackError(f"{label}: model {name} names a fingerprint the pack does not hold")
                for opt in ("license", "target", "revision"):
                    if m.get(opt) is not None and not isinstance(m.get(opt), str):
                        raise PackError(f"{label}: model {name}: field {opt!r} has the wrong type")
                models.append(m)
            states = []
            for s in manifest.get("upstreams") or []:
                if (
                    not isinstance(s, dict)
                    or not all(
                        isinstance(s.get(k), (str, type(None)))
                        for k in ("id", "revision", "state", "origin", "detail", "checked")
                    )
                    or not s.get("id")
                    or not s.get("state")
                ):
                    raise PackError(f"{label}: an upstream state record is malformed")
                states.append(
                    UpstreamState(
                        s["id"],
                        s.get("revision"),
                        s["state"],
                        s.get("origin"),
                        s.get("detail") or "",
                        s.get("checked") or "",
                    )
                )
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # e.g. a CRC error in a damaged member
            raise PackError(f"{label}: damaged archive ({str(exc)[:80]})") from None
    # Validated: one transaction, so an interrupted import leaves the index as it was.
    index.put_all(
        [
            (
                m["name"],
                fingerprints[m["fingerprint"]][0],
                m.get("license"),
                m.get("target") or m["name"],
                m.get("revision"),
                m["fingerprint"],
                fingerprints[m["fingerprint"]][1],
            )
            for m in models
        ],
        states,
    )
    return PackSummary(len(models), len(fingerprints), Path(path).stat().st_size, _sha(raw))
