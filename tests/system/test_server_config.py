"""How ``serve`` builds Hypercorn's configuration: the repo's hypercorn.toml, flags that win, TLS."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from tts_trio.server.launch import hypercorn_config
from tts_trio.settings import DEFAULT_GRACEFUL_TIMEOUT, Settings, SettingsError

REPO_CONFIG = Path(__file__).resolve().parents[2] / "hypercorn.toml"


def settings(**values: object) -> Settings:
    return Settings.load(values, environ={})


def test_the_repo_config_is_taken_as_written_where_nothing_overrides_it() -> None:
    config = hypercorn_config(settings(), REPO_CONFIG, bind_given=False)
    assert config.worker_class == "trio"
    assert config.bind == ["127.0.0.1:8000"]
    assert config.graceful_timeout == 5.0
    assert config.keep_alive_timeout == 30
    assert config.ssl_enabled is False


def test_flags_and_environment_win_over_the_config_file() -> None:
    config = hypercorn_config(settings(host="0.0.0.0", port=9000, graceful_timeout=12.5), REPO_CONFIG)
    assert config.bind == ["0.0.0.0:9000"]
    assert config.graceful_timeout == 12.5
    assert hypercorn_config(settings(host="::1", port=9000), None).bind == ["[::1]:9000"]


def test_without_a_config_file_the_defaults_are_ours(tmp_path: Path) -> None:
    config = hypercorn_config(settings(), None)
    assert config.graceful_timeout == DEFAULT_GRACEFUL_TIMEOUT
    other = tmp_path / "other.toml"
    other.write_text('worker_class = "asyncio"\ngraceful_timeout = 2.0\n')
    from_file = hypercorn_config(settings(), other, bind_given=False)
    assert (from_file.worker_class, from_file.graceful_timeout) == ("trio", 2.0)  # Quart-Trio needs trio
    silent = tmp_path / "silent.toml"
    silent.write_text("keep_alive_timeout = 10\n")  # says nothing of graceful_timeout: ours, not Hypercorn's 3 s
    assert hypercorn_config(settings(), silent, bind_given=False).graceful_timeout == DEFAULT_GRACEFUL_TIMEOUT


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    return cert, key


def test_tls_from_settings_serves_https_with_h2_offered_first(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    config = hypercorn_config(settings(certfile=cert, keyfile=key), REPO_CONFIG, bind_given=False)
    assert config.ssl_enabled
    assert config.alpn_protocols == ["h2", "http/1.1"]


def test_tls_needs_both_files(certificate: tuple[Path, Path]) -> None:
    with pytest.raises(SettingsError, match="give both the certificate and its key"):
        hypercorn_config(settings(certfile=certificate[0]), None)


@pytest.mark.parametrize("problem", ["missing", "swapped", "not pem"])
def test_a_bad_certificate_or_key_stops_start_up_with_one_line(
    certificate: tuple[Path, Path], tmp_path: Path, problem: str
) -> None:
    cert, key = certificate
    if problem == "missing":
        key = tmp_path / "nonesuch.pem"
    elif problem == "swapped":
        cert, key = key, cert
    else:
        cert.write_text("not a certificate\n")
    with pytest.raises(SettingsError) as raised:
        hypercorn_config(settings(certfile=cert, keyfile=key), None)
    message = str(raised.value)
    assert message.startswith("invalid TLS certificate or key") and "\n" not in message
