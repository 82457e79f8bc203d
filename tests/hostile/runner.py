"""One hostile case in one child process: every command in-process through the CLI entry point (scanner.cli.main,
the same code path as the `originscan` script), under an address-space cap.

    python runner.py SPEC.json            one case in this process
    python runner.py --serve SPECS.json   many cases, each in a child forked from this (already imported) process

SPEC: {"as_limit": bytes, "timeout": seconds per command, "out": folder, "commands": [[arg, …], …],
       "sweep_targets": [target, …] (optional: what `list_org` returns, for `sweep` over local folders)}

Each command's stdout and stderr go through UTF-8 text streams with strict errors, like a CI runner's pipe, and are
saved as bytes (OUT/N.out, OUT/N.err); OUT/result.json holds exit codes and seconds. A command still running after
`timeout` seconds is stopped by SIGALRM and recorded as a hang; anything escaping the entry point is recorded too.

With --serve, the scanner is imported and its knowledge base loaded once; each case then runs in a forked child
(with its own address-space cap, stdout/stderr files and environment additions) that the server kills after
`case_timeout` seconds, recording child.json next to OUT: exit status, seconds, peak resident memory (VmHWM; a
forked child may start from the server's own, so it is an upper bound) and whether it was killed.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path


class Hang(BaseException):
    """Raised by SIGALRM: a BaseException, so the CLI's own `except Exception` cannot swallow it."""


def _alarm(signum, frame):
    raise Hang()


def run(spec: dict) -> list[dict]:
    resource.setrlimit(resource.RLIMIT_AS, (spec["as_limit"], spec["as_limit"]))
    if spec.get("sweep_targets") is not None:
        import scanner.sources.resolve as resolve

        targets = list(spec["sweep_targets"])
        resolve.list_org = lambda org, **kw: targets
    from scanner.cli import main as cli_main

    out_dir = Path(spec["out"])
    signal.signal(signal.SIGALRM, _alarm)
    results = []
    real_out, real_err = sys.stdout, sys.stderr
    for i, argv in enumerate(spec["commands"]):
        out_b, err_b = io.BytesIO(), io.BytesIO()
        out = io.TextIOWrapper(out_b, encoding="utf-8", errors="strict", write_through=True)
        err = io.TextIOWrapper(err_b, encoding="utf-8", errors="strict", write_through=True)
        sys.stdout, sys.stderr = out, err
        sys.argv = ["originscan", *argv]
        status, rc = "exit", None
        started = time.monotonic()
        signal.alarm(int(spec["timeout"]))
        try:
            cli_main()
            rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Hang:
            status = "hang"
        except BaseException:  # noqa: BLE001 - recorded and asserted on by the test
            status = "escaped"
            try:
                err.write(traceback.format_exc())
            except Exception:
                err_b.write(traceback.format_exc().encode("utf-8", "backslashreplace"))
        finally:
            signal.alarm(0)
            seconds = time.monotonic() - started
            sys.stdout, sys.stderr = real_out, real_err
            for stream in (out, err):
                try:
                    stream.flush()
                except Exception:
                    pass
        (out_dir / f"{i}.out").write_bytes(out_b.getvalue())
        (out_dir / f"{i}.err").write_bytes(err_b.getvalue())
        results.append({"argv": argv, "status": status, "rc": rc, "seconds": round(seconds, 3)})
        (out_dir / "result.json").write_text(json.dumps(results))
    return results


def _peak_kb() -> int:
    status = Path("/proc/self/status").read_text()
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def serve(specs: list[dict]) -> None:
    import scanner.cli  # noqa: F401 - imported once, shared by every forked case
    import scanner.pipeline  # noqa: F401
    import scanner.report.render  # noqa: F401
    from scanner.knowledge import catalogue, knowledge_base

    knowledge_base()
    catalogue()
    for spec in specs:
        out = Path(spec["out"])
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the case
            code = 0
            try:
                for fd, name in ((1, "child.out"), (2, "child.err")):
                    f = os.open(out.parent / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.dup2(f, fd)
                    os.close(f)
                sys.stdout, sys.stderr = (
                    io.TextIOWrapper(
                        os.fdopen(fd, "wb", buffering=0),
                        encoding="utf-8",
                        errors="backslashreplace",
                        write_through=True,
                    )
                    for fd in (1, 2)
                )
                os.chdir(spec["cwd"])
                os.environ.update(spec.get("env") or {})
                run(spec)
                (out / "peak.json").write_text(json.dumps({"peak_rss_kb": _peak_kb()}))
            except BaseException:  # noqa: BLE001 - the server must go on
                traceback.print_exc()
                code = 70
            finally:
                os._exit(code)
        killed = False
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() - started > spec["case_timeout"]:
                os.kill(pid, signal.SIGKILL)
                killed = True
                done, status, usage = os.wait4(pid, 0)
                break
            time.sleep(0.02)
        try:
            peak = json.loads((out / "peak.json").read_text())["peak_rss_kb"]
        except (OSError, ValueError, KeyError):
            peak = usage.ru_maxrss
        (out.parent / "child.json").write_text(
            json.dumps(
                {
                    "exit": os.waitstatus_to_exitcode(status),
                    "seconds": round(time.monotonic() - started, 3),
                    "peak_rss_kb": peak,
                    "killed": killed,
                }
            )
        )


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(json.loads(Path(sys.argv[2]).read_text()))
        sys.exit(0)
    spec = json.loads(Path(sys.argv[1]).read_text())
    run(spec)
    # VmHWM is this process's own peak (getrusage's ru_maxrss survives exec and includes the forking parent's).
    print(json.dumps({"peak_rss_kb": _peak_kb()}))
