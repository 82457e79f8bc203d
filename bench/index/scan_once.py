"""One `scan` of a suspect against an index, in its own process (run by bench/index/run.py for old and new code).

Prints JSON: wall and CPU seconds of the scan, weight bytes read (every ByteSource read, counted), and the
upstreams called derived. Peak memory is this process's VmHWM (its own
high-water RSS; a waited child's ru_maxrss would include the parent's image from before exec)."""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    suspect, index_path = sys.argv[1], sys.argv[2]
    from scanner.sources import bytesource

    counted = {"bytes": 0}
    original = bytesource.ByteSource.read

    def read(self, offset, length):
        data = original(self, offset, length)
        counted["bytes"] += len(data)
        return data

    bytesource.ByteSource.read = read
    from scanner.pipeline import scan_target
    from scanner.policy import Policy
    from scanner.provenance.index import Index

    index = Index(index_path)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    report = scan_target(suspect, Policy(), index)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    derived = sorted({f.evidence.get("upstream") for f in report.findings if f.rule.startswith("weights.")})
    peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(
        json.dumps(
            {
                "peak_mb": peak_kb / 1024,
                "wall": wall,
                "cpu": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
                "bytes": counted["bytes"],
                "derived": derived,
            }
        )
    )


if __name__ == "__main__":
    main()
