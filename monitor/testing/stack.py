"""A whole world on loopback: fake Kubernetes, Slack and Cloud Logging, and real daemons.

The demo and the end-to-end tests both need the same thing: the three fakes running in
this process, a kubeconfig and an SLA config on disk, and `sla-monitor run` started as a
real subprocess pointed at them through the product's own seams (`KUBECONFIG`,
`SLACK_BOT_TOKEN`, `SLACK_API_URL`, `cloud_logging.endpoint`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import yaml

from monitor.testing.kube_api import FakeKubeApi
from monitor.testing.logging_api import FakeCloudLogging
from monitor.testing.slack_api import FakeSlackApi
from monitor.testing.wait import patient, wait_until

SLACK_TOKEN = "xoxb-local-stack"


def free_port() -> int:
    """A port nobody listens on right now (the daemon binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cron_at(instant: datetime) -> str:
    """A 6-field (seconds first) cron that fires daily at `instant`'s UTC time of day."""
    utc = instant.astimezone(UTC)
    return f"{utc.second} {utc.minute} {utc.hour} * * *"


def seconds_ahead(seconds: float) -> datetime:
    """A whole-second instant at least `seconds` from now."""
    return (datetime.now(UTC) + timedelta(seconds=seconds + 1)).replace(microsecond=0)


class MonitorProcess:
    """One `sla-monitor run` subprocess; its stderr goes to a log file."""

    def __init__(
        self, args: Sequence[str], env: dict[str, str], workdir: Path, port: int, name: str
    ) -> None:
        self.port = port
        self.log_path = workdir / f"{name}.log"
        self.stdout_path = workdir / f"{name}.out"
        self._args, self._env, self._workdir = list(args), env, workdir
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._out: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MonitorProcess:
        self._log = self.log_path.open("ab")
        self._out = self.stdout_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", *self._args],
            env=self._env,
            cwd=self._workdir,
            stdout=self._out,
            stderr=self._log,
        )
        return self

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def get(self, path: str) -> tuple[int, bytes]:
        """GET a path of the daemon's HTTP server: (status, body); (0, b"") if unreachable."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=patient(2)) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())
        except OSError:
            return 0, b""

    def status(self) -> dict[str, Any]:
        code, body = self.get("/api/status")
        if code != 200:
            raise AssertionError(f"/api/status answered {code}")
        document: dict[str, Any] = json.loads(body)
        return document

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"daemon exited early:\n{self.logs()}")
            return self.get("/readyz")[0] == 200

        wait_until(ready, timeout=timeout, step=0.05)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        code = self._process.wait(patient(timeout))
        self._close()
        return code

    def kill(self) -> None:
        """SIGKILL: no chance to save or flush."""
        assert self._process is not None
        self._process.kill()
        self._process.wait(10)
        self._close()

    def signal(self, signum: int) -> None:
        assert self._process is not None
        self._process.send_signal(signum)

    def _close(self) -> None:
        for stream in (self._log, self._out):
            if stream is not None:
                stream.close()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stdout_lines(self) -> list[str]:
        if not self.stdout_path.exists():
            return []
        return self.stdout_path.read_text(errors="replace").splitlines()


class LocalStack:
    """The fakes plus helpers to write configs and start daemons against them."""

    def __init__(
        self,
        workdir: Path,
        *,
        channels: Sequence[str] = ("alerts",),
        cloud_logging: bool = False,
        rbac_yaml: Sequence[str] | None = None,
        bookmark_interval: float = 1.0,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.kube = FakeKubeApi(bookmark_interval=bookmark_interval, rbac_yaml=rbac_yaml)
        self.slack = FakeSlackApi(token=SLACK_TOKEN, channels=dict.fromkeys(channels, True))
        self.logging = FakeCloudLogging() if cloud_logging else None
        self.kubeconfig = workdir / "kubeconfig"
        self.processes: list[MonitorProcess] = []

    def start(self) -> LocalStack:
        self.kube.start()
        self.slack.start()
        if self.logging is not None:
            self.logging.start()
        self.kube.write_kubeconfig(self.kubeconfig)
        return self

    def stop(self) -> None:
        for process in self.processes:
            if process.alive():
                process.kill()
        if self.logging is not None:
            self.logging.stop()
        self.slack.stop()
        self.kube.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            SLACK_BOT_TOKEN=SLACK_TOKEN,
            SLACK_API_URL=self.slack.url,
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def write_config(self, config: dict[str, Any], name: str = "sla.yaml") -> Path:
        """Write an SLA config; state defaults to a file in the work directory."""
        document = dict(config)
        document.setdefault("slack", {"channel": "#alerts"})
        document.setdefault("state", {"file": str(self.workdir / "state.json")})
        if self.logging is not None and "cloud_logging" in document:
            document["cloud_logging"].setdefault("endpoint", self.logging.url)
        path = self.workdir / name
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def spawn(
        self,
        config_path: Path,
        *args: str,
        name: str = "monitor",
        env: dict[str, str] | None = None,
    ) -> MonitorProcess:
        """Start `sla-monitor run` (not waiting for readiness)."""
        port = free_port()
        process = MonitorProcess(
            ["--config", str(config_path), "--listen", f"127.0.0.1:{port}", *args],
            env or self.env(),
            self.workdir,
            port,
            name,
        )
        self.processes.append(process.start())
        return process
