"""Peers in the same run (issue 26): LiteLLM's proxy and Portkey's gateway, each forwarding to the mock.

`bench/run.py --peers` installs them once into a cache folder outside the repository
(`$XDG_CACHE_HOME/trollllm-bench-peers`, by default `~/.cache/trollllm-bench-peers`): LiteLLM with its
proxy extras into a venv of its own (pip), Portkey's gateway with npm. Nothing of theirs is in the
repository but the pinned versions below and the configuration they are started with here. Each is started
configured to call the mock upstream, without a database, a cache, logging callbacks or guardrails, and
driven on the same cells as the gateway: the same request bytes but for the model name and the headers.

    LiteLLM: `litellm --config config.yaml`, the config mapping `bench-gpt` to the mock's OpenAI-compatible
             base URL and `bench-claude` to its Anthropic one; `/v1/chat/completions` and `/v1/messages`.
    Portkey: `node build/start-server.js --port P`, each request naming the provider and the mock as its
             custom host in `x-portkey-provider` / `x-portkey-custom-host`; `/v1/chat/completions` and
             `/v1/messages` (the Anthropic provider), JSON only: its streams fail here (PORTKEY_STREAM_SKIP).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from formats import make_target
from loadgen import Target
from stack import MOCK_KEY, MODELS, Processes, SetupError, free_port
from yardsticks import Yardstick, process_tree

LITELLM_VERSION = "1.100.5"
PORTKEY_VERSION = "1.15.2"
PEER_KEY = "sk-bench-peer-master-key"
"""LiteLLM's master key (the key the load generator sends it)."""
PORTKEY_STREAM_SKIP = (
    f"Portkey {PORTKEY_VERSION} answers every stream with HTTP 500 ('TypeError: immutable' in its"
    " updateHeaders on Node, its open issues 1389/1550; seen here on Node 20 and 22, in both formats,"
    " also with @hono/node-server held at 1.14.2)"
)
PEER_FORMATS = ("openai", "anthropic")
"""The cells the peers run: chat completions and messages, each on its own model (no translated cells)."""


class PeerUnavailable(SetupError):
    """A peer could not be installed or started; the run prints one SKIP line and goes on without it."""


def cache_dir() -> Path:
    """Where the peers are installed, outside the repository."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "trollllm-bench-peers"


def _run(argv: list[str], what: str, cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerUnavailable(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).splitlines()
        said = "\n".join(line for line in lines if not line.startswith("WARNING: Location"))
        raise PeerUnavailable(f"{what} failed ({' '.join(argv[:4])} …):\n{said[-1500:]}")


def install_litellm() -> Path:
    """LiteLLM's `litellm` command, installed once (pip, pinned, its own venv); PeerUnavailable if not."""
    home = cache_dir() / f"litellm-{LITELLM_VERSION}"
    command = home / "venv" / "bin" / "litellm"
    if (home / "installed").exists():
        return command
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    print(f"installing LiteLLM {LITELLM_VERSION} into {home} (once) …", flush=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    _run([base_python, "-m", "venv", str(home / "venv")], "creating LiteLLM's venv")
    pip = str(home / "venv" / "bin" / "pip")
    _run([pip, "install", "--quiet", f"litellm[proxy]=={LITELLM_VERSION}"], "pip install litellm[proxy]")
    (home / "installed").write_text(LITELLM_VERSION)
    return command


def install_portkey() -> Path:
    """Portkey's gateway entry script, installed once (npm, pinned); PeerUnavailable if not."""
    home = cache_dir() / f"portkey-{PORTKEY_VERSION}"
    script = home / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if (home / "installed").exists():
        return script
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise PeerUnavailable("Portkey needs node and npm, not found on PATH")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    print(f"installing Portkey's gateway {PORTKEY_VERSION} into {home} (once) …", flush=True)
    package = f"@portkey-ai/gateway@{PORTKEY_VERSION}"
    _run(["npm", "install", "--prefix", str(home), "--no-audit", "--no-fund", package], "npm install", home)
    if not script.exists():
        raise PeerUnavailable(f"npm installed {package} but {script} is not there")
    (home / "installed").write_text(PORTKEY_VERSION)
    return script


def _wait_http(processes: Processes, name: str, process: subprocess.Popen[bytes], url: str) -> None:
    """Wait until `url` answers 200 (LiteLLM takes 10-30 s to start on a shared machine)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise PeerUnavailable(f"{name} did not start:\n{processes.output(name)}")


LOG_CONFIG = {  # uvicorn's loggers at WARNING: no access log line per request (the gateway writes none)
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {name: {"handlers": ["stderr"], "level": "WARNING"} for name in ("uvicorn", "uvicorn.access")},
}


def start_litellm(processes: Processes, mock_url: str) -> Yardstick:
    """LiteLLM's proxy, one worker, no database: `bench-gpt` and `bench-claude` routed to the mock."""
    command = install_litellm()
    models = [
        ("bench-gpt", f"openai/{MODELS['openai'][1]}", f"{mock_url}/v1"),
        ("bench-claude", f"anthropic/{MODELS['anthropic'][1]}", mock_url),
    ]
    config = {
        "model_list": [
            {"model_name": name, "litellm_params": {"model": model, "api_base": base, "api_key": MOCK_KEY}}
            for name, model, base in models
        ],
        "general_settings": {"master_key": PEER_KEY},
        "litellm_settings": {"telemetry": False},
    }
    config_path = processes.workdir / "litellm-config.yaml"  # JSON is YAML
    config_path.write_text(json.dumps(config))
    log_config = processes.workdir / "litellm-log.json"
    log_config.write_text(json.dumps(LOG_CONFIG))
    port = free_port()
    argv = [str(command), "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", "1", "--log_config", str(log_config)]
    env = {**processes.env, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    process, _ = processes.spawn("litellm", argv, env)
    url = f"http://127.0.0.1:{port}"
    _wait_http(processes, "litellm", process, f"{url}/health/liveliness")

    def request(mode: str, fmt: str) -> Target | None:
        return make_target(url, PEER_KEY, MODELS[fmt][0], mode, fmt) if fmt in PEER_FORMATS else None

    return Yardstick("litellm", process_tree(process.pid), request)


def start_portkey(processes: Processes, mock_url: str) -> Yardstick:
    """Portkey's gateway (headless: no console UI), each request naming the mock as its custom host."""
    script = install_portkey()
    if shutil.which("node") is None:
        raise PeerUnavailable("Portkey needs node, not found on PATH")
    port = free_port()
    process, _ = processes.spawn("portkey", ["node", str(script), f"--port={port}", "--headless"])
    url = f"http://127.0.0.1:{port}"
    _wait_http(processes, "portkey", process, f"{url}/")

    def request(mode: str, fmt: str) -> Target | None:
        if fmt not in PEER_FORMATS or mode == "stream":
            return None
        target = make_target(url, MOCK_KEY, MODELS[fmt][1], mode, fmt)
        routing = {"x-portkey-provider": fmt, "x-portkey-custom-host": f"{mock_url}/v1"}
        return dataclasses.replace(target, headers={**target.headers, **routing})

    return Yardstick("portkey", process_tree(process.pid), request)


def start_peers(processes: Processes, mock_url: str, args: argparse.Namespace) -> list[Yardstick]:
    """The peers asked for (`--peers`), installed if need be and started; a loud SKIP line for a peer that
    cannot be, and for the cells the peers do not run."""
    if not args.peers:
        return []
    started = []
    for name, start in (("litellm", start_litellm), ("portkey", start_portkey)):
        try:
            started.append(start(processes, mock_url))
            print(f"peer {name} up, forwarding to the mock", flush=True)
        except (SetupError, OSError) as exc:
            print(f"\n*** SKIP peer {name}: {exc}\n", flush=True)
    if skipped := [fmt for fmt in args.formats if fmt not in PEER_FORMATS]:
        print(f"SKIP peers on {', '.join(skipped)}: they run the {' and '.join(PEER_FORMATS)} cells only")
    if "stream" in args.modes and any(peer.name == "portkey" for peer in started):
        print(f"SKIP portkey on stream cells: {PORTKEY_STREAM_SKIP}", flush=True)
    return started


if __name__ == "__main__":  # install both (e.g. ahead of a run): python bench/peers.py
    for install in (install_litellm, install_portkey):
        try:
            print(install())
        except PeerUnavailable as exc:
            print(f"SKIP: {exc}")
