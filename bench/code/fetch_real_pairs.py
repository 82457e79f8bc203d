"""Fill the real code-pair cache from the cited sources, or check it offline.

    python bench/code/fetch_real_pairs.py            # fetch what is missing, then say what could not be had
    python bench/code/fetch_real_pairs.py --check    # offline: verify every cited file already in the cache

The cache is ${ORIGINSCAN_BENCH_CACHE:-${XDG_CACHE_HOME:-~/.cache}/originscan-bench}/code/<owner>__<name>/<commit>/<path>
(see real_pairs.py). Each file comes from raw.githubusercontent.com/<repo>/<commit>/<path>; where the label also names
a PyPI release that carries the same bytes, that release (downloaded with pip, no dependencies) is the fallback, and
a file cited as pypi/<package> at <version> comes from that release only. Nothing is written
unless its size, sha256 and git blob id are the ones in the label. Exit status: 0 when every cited file is in the
cache and verified, 1 otherwise.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_pairs import (  # noqa: E402
    FileRef,
    Release,
    cache_root,
    cached_path,
    git_blob_of,
    load_pairs,
    sha256_of,
    unique_files,
)


@dataclass(frozen=True)
class Outcome:
    ref: FileRef
    status: str  # "cached", "fetched", "missing", "mismatch", "unreachable"
    detail: str = ""


def describe(data: bytes) -> str:
    return f"{len(data)} bytes, sha256 {sha256_of(data)}, git blob {git_blob_of(data)}"


def reason(exc: Exception) -> str:
    """One short line: requests' own messages run to several hundred characters."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.ConnectionError):
        return "no connection"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"


def from_github(ref: FileRef, timeout: float) -> bytes:
    response = requests.get(ref.url, timeout=timeout)
    response.raise_for_status()
    return response.content


OTHER_WHEEL = ["--only-binary", ":all:", "--platform", "manylinux1_x86_64", "--python-version", "3.9"]


def release_member(release: Release, workdir: Path, timeout: float) -> bytes:
    """Download the release with pip (no dependencies) and read the member out of its wheel or sdist."""
    target = workdir / f"{release.package}-{release.version}"
    if not target.is_dir():
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--timeout", str(int(timeout)), "-d", str(target), f"{release.package}=={release.version}"]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=timeout * 10)
        except subprocess.CalledProcessError:
            # An old release may have no wheel for this Python (torchvision 0.12): its Python members are the same
            # in every platform's wheel, so take the one built for an older CPython.
            subprocess.run(command + OTHER_WHEEL, check=True, capture_output=True, timeout=timeout * 10)
    return read_member(target, release)


def read_member(folder: Path, release: Release) -> bytes:
    """The member's bytes from the wheel (a zip) or sdist (a tar.gz) that pip put in folder."""
    for archive in sorted(folder.iterdir()):
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf:
                if release.member in zf.namelist():
                    return zf.read(release.member)
        elif archive.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(archive) as tf:
                try:
                    member = tf.extractfile(release.member)
                except KeyError:
                    continue
                if member is not None:
                    return member.read()
    raise FileNotFoundError(f"{release.member} is not in {release.package} {release.version}")


def fetch_one(ref: FileRef, root: Path, workdir: Path, timeout: float) -> Outcome:
    path = cached_path(ref, root)
    if path.is_file() and ref.matches(path.read_bytes()):
        return Outcome(ref, "cached")
    sources: list[tuple[str, Callable[[], bytes]]] = []
    if ref.url:
        sources.append(("github", lambda: from_github(ref, timeout)))
    if ref.release is not None:
        release = ref.release
        sources.append(("pypi", lambda: release_member(release, workdir, timeout)))
    failures = []
    for kind, get in sources:
        try:
            data = get()
        except (requests.RequestException, subprocess.SubprocessError, OSError, tarfile.TarError) as exc:
            failures.append(f"{kind}: {reason(exc)}")
            continue
        if not ref.matches(data):
            return Outcome(ref, "mismatch", f"{kind} gave {describe(data)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        return Outcome(ref, "fetched", kind)
    return Outcome(ref, "unreachable", "; ".join(failures) or "no source to fetch from")


def check_one(ref: FileRef, root: Path) -> Outcome:
    path = cached_path(ref, root)
    if not path.is_file():
        return Outcome(ref, "missing")
    data = path.read_bytes()
    if not ref.matches(data):
        return Outcome(ref, "mismatch", f"cache holds {describe(data)}")
    return Outcome(ref, "cached")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify the cache offline; fetch nothing")
    parser.add_argument("--cache", type=Path, default=None, help="cache root (default: see real_pairs.cache_root)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    args = parser.parse_args(argv)

    root = args.cache or cache_root()
    pairs = load_pairs()
    refs = unique_files(pairs)
    with tempfile.TemporaryDirectory(prefix="originscan-fetch-") as work:
        outcomes = [check_one(r, root) if args.check else fetch_one(r, root, Path(work), args.timeout) for r in refs]

    bad = [o for o in outcomes if o.status not in ("cached", "fetched")]
    counts = {
        s: sum(o.status == s for o in outcomes) for s in ("cached", "fetched", "missing", "mismatch", "unreachable")
    }
    print(f"{len(pairs)} pairs, {len(refs)} cited files, cache {root / 'code'}")
    print("  " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    for o in bad:
        print(f"  {o.status}: {o.ref.repo}@{o.ref.commit[:12]} {o.ref.path}" + (f" ({o.detail})" if o.detail else ""))
    if bad:
        short = {r.key for r in refs} - {o.ref.key for o in outcomes if o.status in ("cached", "fetched")}
        lacking = [p.id for p in pairs if any(f.key in short for f in p.files)]
        print(f"  pairs without all their files ({len(lacking)}): {', '.join(lacking)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
