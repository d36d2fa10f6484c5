"""The bench runner: ``python -m bench [--quick] [--cases ...] [--brokers ...]``.

Starts its own Redis (and a RabbitMQ vhost when RabbitMQ is up), runs each case in a fresh
Python process with that case's environment (trainq reads its settings once per process),
prints one table and writes ``bench/results/results.json`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from bench import report
from bench.report import Row
from bench.servers import PYTHON, ROOT, RabbitVhost, RedisServer, rabbitmq_available, workdir
from bench.sizes import QUICK, Sizes
from bench.systems import BenchEnv

RESULTS = Path(__file__).resolve().parent / "results"
#: Cases run on both brokers; the others need only Redis (the registry is always Redis).
BOTH_BROKERS = ("submit", "start", "throughput", "dependencies", "pipeline")
CASES = (
    "submit",
    "start",
    "throughput",
    "dependencies",
    "pipeline",
    "registry",
    "items",
    "retention",
    "replicas",
    "redis-cost",
    "sharing",
)


def case_function(name: str) -> Callable[[BenchEnv, Sizes], list[Row]]:
    """The function measuring case ``name`` (imported late: cases import trainq)."""
    from bench import (
        dependencies,
        items,
        latency,
        redis_cost,
        registry_scale,
        replicas,
        retention,
        sharing,
        throughput,
    )

    functions: dict[str, Callable[[BenchEnv, Sizes], list[Row]]] = {
        "submit": latency.submit_latency,
        "start": latency.start_latency,
        "throughput": throughput.run,
        "dependencies": dependencies.run,
        "pipeline": dependencies.pipeline_start,
        "registry": registry_scale.run,
        "items": items.run,
        "retention": retention.run,
        "replicas": replicas.run,
        "redis-cost": redis_cost.run,
        "sharing": sharing.run,
    }
    return functions[name]


def run_case(name: str, env: BenchEnv, sizes: Sizes, timeout: float) -> list[Row]:
    """Run one case in a fresh process with ``env``; return its rows."""
    out = env.logs / f"{name}-{env.broker}.json"
    args = [
        PYTHON,
        "-m",
        "bench",
        "--child",
        name,
        "--redis",
        env.redis_url,
        "--broker-url",
        env.broker_url,
        "--logs",
        str(env.logs),
        "--sizes",
        json.dumps(asdict(sizes)),
        "--result",
        str(out),
    ]
    done = subprocess.run(
        args, cwd=ROOT, env={**os.environ, **env.variables()}, timeout=timeout, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"case {name} on {env.broker} failed:\n{done.stdout}\n{done.stderr}")
    return report.rows_from_json(json.loads(out.read_text()))


def run(
    cases: list[str], brokers: list[str], sizes: Sizes, out: Path | None, timeout: float = 900
) -> list[Row]:
    """Start the servers, run ``cases`` on ``brokers``, stop the servers; write results to ``out``."""
    meta = report.machine()
    logs = workdir()
    redis_server = RedisServer(logs)
    vhost = RabbitVhost() if "rabbitmq" in brokers else None
    rows: list[Row] = []
    try:
        for name in cases:
            for broker in brokers if name in BOTH_BROKERS else ["redis"]:
                url = vhost.url if broker == "rabbitmq" and vhost else redis_server.url
                began = time.monotonic()
                rows += run_case(name, BenchEnv(redis_server.url, url, logs), sizes, timeout)
                print(f"  {name} on {broker}: {time.monotonic() - began:.1f}s", file=sys.stderr)
    finally:
        redis_server.stop()
        if vhost:
            vhost.stop()
    meta["loadavg_end"] = list(os.getloadavg())
    meta["sizes"] = asdict(sizes)
    meta["command"] = "python -m bench " + " ".join(sys.argv[1:])
    rows = report.hold_rabbitmq_to_redis(rows)
    report.print_table(rows)
    if out is not None:
        report.write(rows, meta, out)
    shutil.rmtree(logs, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run (or, with ``--child``, measure one case in this process)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument(
        "--brokers", nargs="+", choices=("redis", "rabbitmq"), help="default: both when RabbitMQ is up"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the CI smoke run)")
    parser.add_argument("--repeat", type=int, help="runs of each throughput measurement (median reported)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results.json/md go")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    for hidden in ("--redis", "--broker-url", "--logs", "--sizes", "--result"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        env = BenchEnv(args.redis, args.broker_url, Path(args.logs))
        env.apply()
        rows = case_function(args.child)(env, Sizes(**json.loads(args.sizes)))
        Path(args.result).write_text(json.dumps([asdict(r) for r in rows]))
        return
    sizes = QUICK if args.quick else Sizes()
    if args.repeat:
        sizes = replace(sizes, repeat=args.repeat)
    brokers = args.brokers or (["redis", "rabbitmq"] if rabbitmq_available() else ["redis"])
    run(args.cases, brokers, sizes, args.out)
