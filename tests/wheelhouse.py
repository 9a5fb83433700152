"""Test helpers for Python packages: a wheelhouse of tiny pure-Python wheels written by hand (a
wheel is a zip with the package, ``METADATA``, ``WHEEL`` and ``RECORD``: no build tool and no
network needed), and code archives as the python runtime takes them.

``tgtest-shout`` 1.0 (module ``tgtest_shout``: ``shout(text)``) requires ``tgtest-mark>=1``
(module ``tgtest_mark``: ``MARK = "!"``), so a resolution has a dependency to find too.
"""

from __future__ import annotations

import base64
import hashlib
import io
import stat
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

PACKAGES = {
    ("tgtest-shout", "1.0"): (
        {"tgtest_shout/__init__.py": "from tgtest_mark import MARK\n\n\n"
                                     "def shout(text):\n    return text.upper() + MARK\n"},
        ["tgtest-mark>=1"],
    ),
    ("tgtest-mark", "1.2"): ({"tgtest_mark/__init__.py": "MARK = '!'\n"}, []),
}


def write_wheel(directory: Path, name: str, version: str, files: Mapping[str, str],
                requires: list[str]) -> Path:
    dist = f"{name.replace('-', '_')}-{version}"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    wheel_info = "Wheel-Version: 1.0\nGenerator: tiergate-tests\nRoot-Is-Purelib: true\n"
    contents = {
        **files,
        f"{dist}.dist-info/METADATA": metadata,
        f"{dist}.dist-info/WHEEL": wheel_info + "Tag: py3-none-any\n",
    }
    records = []
    path = directory / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name_in, text in contents.items():
            data = text.encode()
            wheel.writestr(name_in, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append(f"{name_in},sha256={digest.decode()},{len(data)}")
        records.append(f"{dist}.dist-info/RECORD,,")
        wheel.writestr(f"{dist}.dist-info/RECORD", "\n".join(records) + "\n")
    path.chmod(0o644)
    return path


def build_wheelhouse(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)  # a gateway running as another uid reads it too
    for (name, version), (files, requires) in PACKAGES.items():
        write_wheel(directory, name, version, files, requires)
    return directory


def zip_of(files: Mapping[str, str | bytes], links: Mapping[str, str] | None = None) -> bytes:
    """A zip of ``files`` (path → content) and symbolic ``links`` (path → target)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def tar_of(files: Mapping[str, str | bytes], links: Mapping[str, str] | None = None,
           hard: bool = False) -> bytes:
    """A gzip'd tar of ``files`` and ``links`` (symbolic, or hard links with ``hard``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


def deploy_archive(api, fn: str, archive: bytes, filename: str = "code.zip", **manifest):
    """POST /deploy as multipart: the manifest and the archive as the ``code`` part."""
    import orjson

    body = {"id": fn, "runtime": "python", **manifest}
    return api.post("/deploy", files={
        "manifest": (None, orjson.dumps(body), "application/json"),
        "code": (filename, archive, "application/octet-stream"),
    })
