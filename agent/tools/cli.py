"""The `edgecam` command: run, check, demo, bench, ctl."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from agent import __version__
from agent.tools.args import Parser, fail, integer, number, size

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="broker + agent (test pattern) + browser viewer on 127.0.0.1",
        description="Everything on one machine with no set-up: an embedded MQTT broker, the "
        "agent streaming a test pattern, and the browser viewer. Prints the viewer URL; "
        "Ctrl-C stops everything.",
    )
    demo.add_argument(
        "--port",
        type=integer(0, 65535),
        default=None,
        help="viewer HTTP port; an explicit port that is taken is an error "
        "(default: 8080, or a free one if 8080 is taken)",
    )
    demo.add_argument(
        "--size",
        type=size,
        default=(1280, 720),
        help="test pattern WIDTHxHEIGHT, even (default 1280x720)",
    )
    demo.add_argument(
        "--framerate",
        type=number(1, 120),
        default=30.0,
        help="frames per second, 1..120 (default 30)",
    )
    demo.add_argument(
        "--bitrate",
        type=integer(50_000, 50_000_000),
        default=2_000_000,
        help="bits per second, 50000..50000000 (default 2000000)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="edgecam",
        description="Camera agent: H.264 to browsers over WebRTC, signalled over MQTT-over-TLS.",
    )
    parser.add_argument("--version", action="version", version=f"edgecam {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )

    run = commands.add_parser(
        "run",
        help="run the agent until SIGTERM/SIGINT",
        description="Run the agent: camera, MQTT signalling and WebRTC viewers. On SIGTERM "
        "or SIGINT every session is closed, the device is marked offline, and it exits 0.",
    )
    run.add_argument("--config", required=True, metavar="PATH", help="the TOML config file")
    run.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error", "critical"],
        default=None,
        help="override the config's logging.level for this run",
    )

    check = commands.add_parser(
        "check",
        help="validate a config and the files it names",
        description="Validate a config file and every file it names (CA, certificate, key, "
        "camera path, state dir). Prints each problem with its key and file; exits 1 if any "
        "is an error.",
    )
    check.add_argument("--config", required=True, metavar="PATH", help="the TOML config file")

    _add_demo(commands)

    bench = commands.add_parser(
        "bench",
        help="measure the agent (bench fanout --help)",
        description="Benchmarks. `edgecam bench fanout` measures the CPU cost per viewer of "
        "the per-packet path (stamp, SRTP protect, send).",
    )
    bench.add_argument("what", choices=["fanout"], help="what to measure")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="options of that benchmark")

    ctl = commands.add_parser(
        "ctl",
        help="control a fleet over MQTT: devices, call, snapshot, events, telemetry",
        description="Fleet control over the MQTT contract (`edgecam ctl --help`).",
        add_help=False,  # `edgecam ctl --help` is ctl's own, complete help
    )
    ctl.add_argument("args", nargs=argparse.REMAINDER, help="see `edgecam ctl --help`")
    return parser


def _run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())
    return 0


def _ctl(argv: list[str]) -> int:
    from agent.tools import ctl

    return ctl.main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ctl"]:  # argparse's REMAINDER would not pass on a leading `--help`
        return _ctl(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "check":
        from agent.config.check import run_check
        from agent.runtime.camera import probe_camera

        return run_check(args.config, probe_camera)

    if args.command == "run":
        from agent.config import ConfigError
        from agent.runtime.app import run_agent
        from agent.runtime.known_good import load_for_boot

        try:
            boot = load_for_boot(args.config)
        except ConfigError as exc:
            for problem in exc.problems:
                print(f"error: {problem}", file=sys.stderr)
            return 1  # as `edgecam check` does for the same file
        except OSError as exc:
            print(f"error: {args.config}: {exc.strerror}", file=sys.stderr)
            return 1
        config = boot.config
        level = (args.log_level or config.logging.level).upper()
        logging.basicConfig(level=level, format=LOG_FORMAT)
        try:
            return _run_until_signal(lambda stop: run_agent(config, stop, reverted=boot.reverted))
        except (ValueError, OSError) as exc:  # ssl.SSLError is an OSError
            # A file the config names that will not load (key, certificate): one line, and
            # the known-good fallback takes over at the next start.
            logging.getLogger("edgecam").error("cannot start: %s", exc)
            return 1

    if args.command == "bench":
        from agent.tools import bench

        return bench.main(args.args)

    if args.command == "demo":
        from agent.tools.demo import DemoOptions, run_demo

        width, height = args.size
        logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
        options = DemoOptions(
            http_port=args.port,
            width=width,
            height=height,
            framerate=args.framerate,
            bitrate=args.bitrate,
        )
        try:
            return _run_until_signal(lambda stop: run_demo(options, stop))
        except OSError as exc:
            fail("edgecam demo", f"--port {args.port}: {exc.strerror or exc}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
