"""The bootstrap admin key: generated once into <data-dir>/admin.key (0600), or from the env."""

from __future__ import annotations

import stat

from plugins.testing import TiergateServer


def test_generated_admin_key_printed_once_and_saved(tmp_path):
    server = TiergateServer(tmp_path / "data", env={"TIERGATE_ADMIN_KEY": ""})
    server.env.pop("TIERGATE_ADMIN_KEY")
    server.start()
    try:
        key_file = tmp_path / "data" / "admin.key"
        key = key_file.read_text().strip()
        assert key.startswith("tg_") and len(key) > 40
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert server.log().count(key) == 1
        with server.client(key=key) as api:
            assert api.get("/functions").status_code == 200
        server.restart()
        assert server.log().count(key) == 1  # not printed again
        assert key_file.read_text().strip() == key
        with server.client(key=key) as api:
            assert api.get("/functions").status_code == 200
    finally:
        server.stop()
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*.db*") if p.is_file())
    assert key.encode() not in stored


def test_env_admin_key(tmp_path):
    server = TiergateServer(tmp_path / "data", env={"TIERGATE_ADMIN_KEY": "tg_from_env_1234567890"})
    server.start()
    try:
        assert not (tmp_path / "data" / "admin.key").exists()
        with server.client(key="tg_from_env_1234567890") as api:
            assert api.get("/functions").status_code == 200
        assert "tg_from_env_1234567890" not in server.log()
    finally:
        server.stop()
