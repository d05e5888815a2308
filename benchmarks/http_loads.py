"""HTTP load generation for the benchmarks: wrk (a C load generator from Debian's packages that
takes a few percent of a core) for plain HTTP loads, and a Python client (aiohttp, in a process of
its own) where wrk is missing or a caller asks for it. Every measurement carries the machine's load
average at its end and the CPU its load generator took, so a figure says what it ran beside.

    python benchmarks/http_loads.py --python-client URL BODY HEADERS CONC SECONDS   # the Python client
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRK_ENV = "PAI_LAB_BENCH_WRK"  # the wrk to run ("wrk" on the PATH unless set)

WRK_SCRIPT = """
local f = assert(io.open({body}, "rb")); wrk.body = f:read("*a"); f:close()
wrk.method = "POST"
{headers}
done = function(summary, latency, requests)
  io.write(string.format('{{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d}}\\n', summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def machine() -> str:
    """One line naming this machine and its load right now."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
        memory = f", {int(mem.split()[1]) / (1 << 20):.0f} GiB"
    except (OSError, StopIteration):
        memory = ""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores{memory}; load average {load}"


def find_wrk(install: bool) -> str | None:
    """The wrk binary; when missing and ``install``, it is installed from Debian's packages first
    (root with apt-get only). None: the Python client generates the loads."""
    wanted = os.environ.get(WRK_ENV, "wrk")
    found = shutil.which(wanted)
    if found or not install or wanted != "wrk":
        return found
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        print("wrk is missing: installing it from Debian's packages (apt-get install wrk)", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True, check=False, timeout=600)
    return shutil.which("wrk")


def _lua(text: str) -> str:
    return '"' + "".join(c if c.isalnum() or c in " -_./:;=,+*()" else f"\\{ord(c)}" for c in text) + '"'


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_load(
    url: str, body: bytes, headers: dict, concurrency: int, seconds: float, wrk: str | None, python_client=False
) -> dict:
    """A fixed number of connections posting ``body`` for ``seconds``: req/s (answers with 200),
    p50 and p99 in ms, errors, the load average at the end, and the generator's CPU (cores)."""
    with tempfile.TemporaryDirectory(prefix="pai-load-") as tmp:
        body_file = Path(tmp) / "body"
        body_file.write_bytes(body)
        cpu0, t0 = _children_cpu(), time.perf_counter()
        if wrk and not python_client:
            script = Path(tmp) / "post.lua"
            lines = "\n".join(f"wrk.headers[{_lua(k)}] = {_lua(str(v))}" for k, v in headers.items())
            script.write_text(WRK_SCRIPT.format(body=_lua(str(body_file)), headers=lines))
            duration = f"{max(1, round(seconds))}s"
            done = subprocess.run(
                [wrk, "-t1", f"-c{concurrency}", f"-d{duration}", "--timeout", "10s", "-s", str(script), url],
                capture_output=True,
                text=True,
                timeout=seconds + 120,
            )
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:] or done.stdout[-2000:])
            raw = json.loads(done.stdout.strip().splitlines()[-1])
            ok = raw["requests"] - raw["status_errors"]
            result = {
                "rps": ok / (raw["duration_us"] / 1e6),
                "p50_ms": raw["p50_us"] / 1000,
                "p99_ms": raw["p99_us"] / 1000,
                "ok": ok,
                "errors": {k: raw[k] for k in ("status_errors", "socket_errors") if raw[k]},
                "generator": "wrk",
            }
        else:
            sizes = [str(concurrency), str(seconds)]
            done = subprocess.run(
                [sys.executable, __file__, "--python-client", url, str(body_file), json.dumps(headers), *sizes],
                capture_output=True,
                text=True,
                timeout=seconds + 120,
            )
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:])
            result = dict(json.loads(done.stdout.strip().splitlines()[-1]), generator="python")
        result["client_cpu"] = (_children_cpu() - cpu0) / (time.perf_counter() - t0)
        result["load"] = os.getloadavg()[0]
    return result


async def _python_client(url: str, body: bytes, headers: dict, concurrency: int, seconds: float) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker():
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status != 200:
                            errors[str(resp.status)] = errors.get(str(resp.status), 0) + 1
                            continue
                except aiohttp.ClientError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "ok": len(latencies),
        "errors": errors,
    }


if __name__ == "__main__" and len(sys.argv) == 7 and sys.argv[1] == "--python-client":
    _url, _body, _headers, _conc, _seconds = sys.argv[2:]
    _load = _python_client(_url, Path(_body).read_bytes(), json.loads(_headers), int(_conc), float(_seconds))
    print(json.dumps(asyncio.run(_load)))
