"""The `edgecam` command: run, check, demo, bench, ctl, ca, broker-config, provision, doctor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agent import __version__
from agent.tools.args import Parser, fail, integer, number, size
from agent.tools.provision_cli import add_provision, run_provision

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
        help="override the config's logging.level for this run (default: the config's)",
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

    from agent.tools.bench import SCENARIOS  # the registry only: scenarios load when run

    bench = commands.add_parser(
        "bench",
        help="measure the agent (bench SCENARIO --help)",
        description="Benchmarks, each with its comparison in the same run; --json FILE, "
        "--plot FILE.png. "
        + "; ".join(f"{s.name}: {s.summary}" for s in SCENARIOS.values()),
    )
    bench.add_argument("what", choices=list(SCENARIOS), help="what to measure")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="options of that benchmark")

    ctl = commands.add_parser(
        "ctl",
        help="control a fleet over MQTT: devices, call, snapshot, events, telemetry",
        description="Fleet control over the MQTT contract (edgecam ctl --help).",
        add_help=False,  # `edgecam ctl --help` is ctl's own, complete help
    )
    ctl.add_argument("args", nargs=argparse.REMAINDER, help="see edgecam ctl --help")
    _add_ca(commands)
    _add_broker_config(commands)
    add_provision(commands)
    _add_doctor(commands)
    return parser


def _add_doctor(commands: Any) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check that this device is ready to stream, and say what to fix",
        description="On a device: the unit and its user, the config, camera and encoder, "
        "clock sync, the certificate (expiry, CN = device.id, key), the broker's port and a "
        "TLS handshake with the device certificate, file ownership and modes, the service. "
        "One line each; exits 1 if any is red.",
    )
    doctor.add_argument(
        "--config",
        default="/etc/edgecam/edgecam.toml",
        metavar="PATH",
        help="the config file (default /etc/edgecam/edgecam.toml)",
    )
    doctor.add_argument(
        "--root",
        metavar="DIR",
        help="examine an install under DIR (a prefix or a chroot): absolute paths of the "
        "config and the unit are taken inside it (default: /)",
    )
    doctor.add_argument("--json", action="store_true", help="one JSON object, not lines")


def _ca_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        default="pki",
        metavar="DIR",
        help="the CA directory: ca.pem, ca.key and device/, client/, broker/ (default ./pki)",
    )


def _add_ca(commands: Any) -> None:
    ca = commands.add_parser(
        "ca",
        help="a certificate authority for the fleet: ca init, ca issue",
        description="A small CA (EC P-256) for operators without one. Private keys are "
        "written mode 0600; nothing is ever overwritten.",
    )
    actions = ca.add_subparsers(dest="ca_command", required=True, metavar="ACTION")
    init = actions.add_parser(
        "init",
        help="create the CA (refuses to overwrite one)",
        description="Create DIR/ca.pem and DIR/ca.key (0600). Refuses if either exists.",
    )
    _ca_location(init)
    init.add_argument(
        "--days", type=integer(1, 36500), default=3650, help="validity in days (default 3650)"
    )
    init.add_argument(
        "--name", default="edgecam CA", metavar="CN", help="the CA's CN (default 'edgecam CA')"
    )
    issue = actions.add_parser(
        "issue",
        help="issue a device, client or broker certificate",
        description="Issue DIR/KIND/NAME.pem and NAME.key (0600) and print them with the "
        "expiry. device: CN = device id (config device.id), clientAuth. client: CN = the "
        "MQTT client id of a fleet tool (edgecam ctl), e.g. ops-alice, clientAuth. broker: "
        "the broker's certificate, serverAuth, with subjectAltNames.",
    )
    issue.add_argument("kind", choices=["device", "client", "broker"], help="what to issue")
    issue.add_argument("name", help="device id, client id, or the broker's host name")
    _ca_location(issue)
    issue.add_argument(
        "--days",
        type=integer(1, 36500),
        default=825,
        help="validity in days (default 825, never past the CA's own expiry)",
    )
    issue.add_argument(
        "--san",
        nargs="+",
        default=[],
        metavar="DNS_OR_IP",
        help="broker only: host names and IP addresses clients connect to (default: NAME)",
    )
    issue.add_argument(
        "--ca-cert", metavar="PATH", help="an existing CA certificate to sign with instead of DIR's"
    )
    issue.add_argument("--ca-key", metavar="PATH", help="its private key (unencrypted PEM)")


def _viewer(text: str) -> Any:
    from agent.tools.broker_config import Viewer

    try:
        return Viewer.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_broker_config(commands: Any) -> None:
    broker = commands.add_parser(
        "broker-config",
        help="write a mosquitto configuration, ACL and password file for the fleet",
        description="Write OUT/mosquitto.conf, OUT/edgecam.acl, OUT/edgecam.passwd and "
        "OUT/certs/ from the CA directory. A TLS listener takes devices and tools by client "
        "certificate (CN = username = client id); a WSS listener takes browsers by password. "
        "Viewer names must match the [access] patterns of the agent's config: viewer-* "
        "watches, ops-* operates, admin-* administers (e.g. viewer-alice). On Debian: "
        "apt-get install mosquitto, then link OUT/mosquitto.conf into /etc/mosquitto/conf.d/.",
    )
    broker.add_argument("--ca-dir", required=True, metavar="DIR", help="the edgecam ca directory")
    broker.add_argument(
        "--out", required=True, metavar="DIR", help="where the broker will read the files from"
    )
    broker.add_argument(
        "--tls-port", type=integer(1, 65535), default=8883, help="MQTT over TLS (default 8883)"
    )
    broker.add_argument(
        "--wss-port",
        type=integer(1, 65535),
        default=8884,
        help="MQTT over secure WebSockets for browsers (default 8884)",
    )
    broker.add_argument(
        "--viewer",
        type=_viewer,
        nargs="+",
        default=[],
        metavar="NAME:PASSWORD",
        help="password accounts for browsers (default none); hashed with mosquitto_passwd "
        "when installed, else PBKDF2-SHA512 in the same $7$ format",
    )
    broker.add_argument(
        "--broker",
        metavar="NAME",
        help="which DIR/broker/NAME.pem to serve (default: the only one there)",
    )
    broker.add_argument(
        "--bind", metavar="IP", help="listen on this address only (default: every address)"
    )
    broker.add_argument(
        "--run-as",
        metavar="USER",
        help="the user mosquitto drops to (default: mosquitto's own, user mosquitto)",
    )
    broker.add_argument(
        "--topic-prefix",
        default="edgecam",
        help="mqtt.topic_prefix of the agents (default edgecam)",
    )


def _broker_config(args: argparse.Namespace) -> int:
    import ipaddress

    from agent.tools import broker_config
    from agent.tools.pki import PkiError

    prog = "edgecam broker-config"
    if args.bind is not None:
        try:
            ipaddress.ip_address(args.bind)
        except ValueError:
            fail(prog, f"--bind {args.bind!r}: not an IP address")
    options = broker_config.BrokerOptions(
        ca_dir=Path(args.ca_dir),
        out=Path(args.out),
        tls_port=args.tls_port,
        wss_port=args.wss_port,
        viewers=args.viewer,
        broker=args.broker,
        bind=args.bind,
        run_as=args.run_as,
        topic_prefix=args.topic_prefix,
    )
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        written = broker_config.write_broker_config(options)
    except PkiError as exc:
        fail(prog, str(exc))
    except OSError as exc:
        fail(prog, f"{exc.filename}: {exc.strerror}")
    for path in written.files:
        print(f"wrote {path}")
    if written.not_for_broker and args.run_as != "root":
        names = " ".join(str(p) for p in written.not_for_broker)
        print(
            f"note: mosquitto reads these as group mosquitto: chgrp mosquitto {names} && "
            f"chmod 640 {names}"
        )
    return 0


def _ca(args: argparse.Namespace) -> int:
    from agent.tools import pki

    prog = f"edgecam ca {args.ca_command}"
    directory = Path(args.dir)
    try:
        if args.ca_command == "init":
            ca = pki.init_ca(directory, days=args.days, name=args.name)
            print(f"CA certificate: {ca.cert_path}")
            print(f"CA key:         {ca.key_path} (mode 0600; keep it offline)")
            print(f"expires:        {ca.cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
            return 0
        if (args.ca_cert is None) != (args.ca_key is None):
            fail(prog, "give both --ca-cert and --ca-key, or neither")
        if args.ca_cert is not None:
            ca = pki.load_ca(Path(args.ca_cert), Path(args.ca_key))
        else:
            ca = pki.load_ca(directory / pki.CA_CERT, directory / pki.CA_KEY)
        issued = pki.issue(
            ca, args.kind, args.name, out_dir=directory, days=args.days, sans=args.san
        )
    except pki.PkiError as exc:
        fail(prog, str(exc))
    except OSError as exc:
        fail(prog, f"{exc.filename}: {exc.strerror}")
    print(f"certificate: {issued.cert_path}")
    print(f"key:         {issued.key_path} (mode 0600)")
    print(f"CA:          {ca.cert_path}")
    print(f"expires:     {issued.not_after:%Y-%m-%d %H:%M} UTC")
    return 0


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


def _demo(args: argparse.Namespace) -> int:
    from agent.tools.demo import DemoOptions, missing_web_asset, run_demo

    missing = missing_web_asset()
    if missing is not None:
        fail("edgecam demo", missing)

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

    if args.command == "ca":
        return _ca(args)

    if args.command == "broker-config":
        return _broker_config(args)

    if args.command == "provision":
        return run_provision(args)

    if args.command == "bench":
        from agent.tools import bench

        return bench.main([args.what, *args.args])

    if args.command == "demo":
        return _demo(args)

    if args.command == "doctor":
        from agent.tools import doctor

        return doctor.main(args.config, args.root, args.json)
    return 2


if __name__ == "__main__":
    sys.exit(main())
