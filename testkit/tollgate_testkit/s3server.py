"""A real S3-compatible server on loopback for the model-delivery tests: versitygw (Apache-2.0), an S3
gateway onto a directory, built from its Go module by hack/s3/build.sh (cached in ~/.cache/tollgate/s3).
It authenticates every request with AWS Signature V4 against its root credentials, so a test that
fetches with the wrong keys is refused as a real object store would refuse it. Not a mock of the protocol.

Objects are written into the gateway's directory (<root>/<bucket>/<key>) through the S3 API by
`put_object`, which signs with the same credentials (botocore from the initializer's environment).
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tollgate_testkit import procs

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


class S3ServerError(RuntimeError):
    pass


def build() -> Path:
    """The versitygw binary (hack/s3/build.sh: cached after the first build, about 5 minutes cold)."""
    out = subprocess.run(["bash", str(REPO / "hack" / "s3" / "build.sh")], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise S3ServerError(f"hack/s3/build.sh failed: {out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1]) / "versitygw"


def initializer_venv() -> Path:
    """The storage initializer's environment (kserve-storage), hack/storage-initializer/venv.sh."""
    out = subprocess.run(["bash", str(REPO / "hack" / "storage-initializer" / "venv.sh")], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise S3ServerError(f"hack/storage-initializer/venv.sh failed: {out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    root: Path
    access_key: str = "tollgate-test-access"
    secret_key: str = "tollgate-test-secret-0123456789"
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        binary = build()
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        (self.root / "meta").mkdir(exist_ok=True)
        log = (self.root / "versitygw.log").open("wb")
        # root credentials on the command line are test-only values; metadata in a sidecar directory
        # (the posix backend otherwise needs user xattrs on the data's filesystem)
        self.proc = subprocess.Popen(
            [str(binary), "--access", self.access_key, "--secret", self.secret_key, "--region", REGION,
             "--port", f"127.0.0.1:{self.port}", "--quiet", "posix", "--sidecar", str(self.root / "meta"),
             str(data)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise S3ServerError(f"versitygw exited: {(self.root / 'versitygw.log').read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        raise S3ServerError("versitygw did not listen within 30s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            procs.stop_group(self.proc.pid, grace=5)
        self.proc = None

    def env(self) -> dict[str, str]:
        """What a Secret for this server holds, in KServe's names."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": REGION, "S3_USE_HTTPS": "0",
                "S3_VERIFY_SSL": "0"}

    def put_object(self, bucket: str, key: str, body: bytes) -> None:
        """Create the bucket if needed and upload one object, signed with the root credentials."""
        script = (
            "import sys, boto3\n"
            "from botocore.config import Config\n"
            "s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name=sys.argv[2], "
            "aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4], "
            "config=Config(s3={'addressing_style': 'path'}))\n"
            "names = [b['Name'] for b in s3.list_buckets().get('Buckets', [])]\n"
            "if sys.argv[5] not in names: s3.create_bucket(Bucket=sys.argv[5])\n"
            "s3.put_object(Bucket=sys.argv[5], Key=sys.argv[6], Body=sys.stdin.buffer.read())\n"
        )
        python = initializer_venv() / "bin" / "python"
        out = subprocess.run([str(python), "-c", script, self.endpoint, REGION, self.access_key, self.secret_key,
                              bucket, key], input=body, capture_output=True, timeout=60, check=False)
        if out.returncode != 0:
            raise S3ServerError(f"put_object failed: {out.stderr.decode()[-2000:]}")
