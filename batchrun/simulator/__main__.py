"""`python -m batchrun.simulator`: the simulator server on its own, with the flags of `batchrun simulate`."""

from __future__ import annotations

import argparse
import sys

from ..errors import BatchrunError
from . import SIMULATE_DETAILS
from .server import serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m batchrun.simulator",
        description="Serve an offline Gemini-compatible API with fault injection on 127.0.0.1.\n\n" + SIMULATE_DETAILS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    faults = parser.add_mutually_exclusive_group()
    faults.add_argument("--profile", help="clean, flaky, overloaded or quota")
    faults.add_argument("--faults", help="a faults YAML file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--request-log", help="append one JSON line per request to this file")
    return parser


def _announce(port: int) -> None:
    print(f"batchrun simulator listening on http://127.0.0.1:{port}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and serve until SIGINT or SIGTERM."""
    args = _parser().parse_args(argv)
    try:
        serve(
            args.host, args.port, profile=args.profile, faults_file=args.faults, seed=args.seed,
            request_log=args.request_log, on_ready=_announce,
        )
    except BatchrunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
