"""A local stand-in for the serving container behind a SageMaker endpoint (TGI or vLLM).

It speaks the SageMaker inference container contract: `GET /ping` answers 200 once the model is
loaded, and `POST /invocations` takes the engine's own request format (`--engine tgi`: TGI's
`{"inputs", "parameters"}`; `--engine vllm`: vLLM's OpenAI chat and text completions), tokenizes the
way that engine tokenizes, enforces its limits (from the container's environment) and answers in its
format (see local_mode/engines/). Run it as
`python -m local_mode.endpoint_server --model-dir DIR --port N [--engine tgi|vllm]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ENGINES = ("tgi", "vllm")


def load_engine(name: str, model_dir: str, environ: dict[str, str]) -> Any:
    from local_mode.engines.model import ServedModel

    model = ServedModel(model_dir)
    if name == "vllm":
        from local_mode.engines.vllm import VllmEngine

        return VllmEngine(model, environ)
    from local_mode.engines.tgi import TgiEngine

    return TgiEngine(model, environ)


def make_handler(engine: Any | None, healthy: bool):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/ping":
                self._answer(200 if healthy else 503, {} if healthy else {"error": "model is not ready"})
            else:
                self._answer(
                    404, {"error": f"no route {self.path}; the container serves GET /ping and POST /invocations"}
                )

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.split("?")[0] != "/invocations":
                self._answer(404, {"error": f"no route {self.path}"})
                return
            if not healthy or engine is None:
                self._answer(503, {"error": "model is not ready", "error_type": "overloaded"})
                return
            try:
                request = json.loads(raw or b"null")
            except json.JSONDecodeError as error:
                self._answer(
                    422 if engine.name == "tgi" else 400,
                    {"error": f"Failed to parse the request body as JSON: {error}", "error_type": "validation"},
                )
                return
            try:
                self._answer(*engine.invoke(request))
            except Exception as error:  # generation itself failed: the container answers a server error
                self._answer(500, {"error": f"{type(error).__name__}: {error}", "error_type": "generation"})

    return Handler


def exit_with_parent() -> None:
    """Stop serving when the process that started this server is gone (it cannot clean up then)."""
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="the downloaded model data (stands in for /opt/ml/model)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--engine", choices=ENGINES, default="tgi", help="the container whose contract to serve")
    parser.add_argument(
        "--never-healthy",
        action="store_true",
        help="answer /ping with 503 forever (simulates a container that never becomes healthy)",
    )
    args = parser.parse_args(argv)
    exit_with_parent()
    engine = None
    if not args.never_healthy:
        engine = load_engine(args.engine, args.model_dir, dict(os.environ))
    server = ThreadingHTTPServer((args.host, args.port), make_handler(engine, healthy=not args.never_healthy))
    print(f"serving {args.model_dir} ({args.engine}) on http://{args.host}:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
