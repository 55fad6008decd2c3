"""The payload codec: AES-GCM round trip, key ids, rotation, and where its keys come from."""

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from integrations.payload_codec import (
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadKeyError,
    PayloadKeys,
    ensure_development_keys,
    generate_key,
    rotate_keys_file,
)
from integrations.temporal import data_converter
from settings import Settings

K1, K2 = generate_key(), generate_key()
SECRET = b"ada.lovelace@example.com"


def plain(data: bytes = b'{"email": "ada.lovelace@example.com"}') -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


def codec(current: str, **keys: str) -> EncryptionCodec:
    return EncryptionCodec(PayloadKeys.parse(keys, current))


async def test_round_trip_hides_data_and_encoding() -> None:
    one = codec("k1", k1=K1)
    original = [plain(), plain(b'"second"'), Payload(metadata={"encoding": b"binary/null"})]
    encoded = await one.encode(original)
    for payload in encoded:
        assert payload.metadata["encoding"] == ENCODING
        assert payload.metadata[KEY_ID_METADATA] == b"k1"
        assert set(payload.metadata) == {"encoding", KEY_ID_METADATA}  # json/plain is inside
        assert SECRET not in payload.data
    assert await one.decode(encoded) == original


async def test_each_encryption_uses_a_fresh_nonce() -> None:
    one = codec("k1", k1=K1)
    first, second = await one.encode([plain(), plain()])
    assert first.data[:12] != second.data[:12] and first.data != second.data


async def test_rotation_old_payloads_still_decode() -> None:
    before = codec("k1", k1=K1)
    written = await before.encode([plain()])
    after = codec("k2", k2=K2, k1=K1)
    assert await after.decode(written) == [plain()]
    (fresh,) = await after.encode([plain()])
    assert fresh.metadata[KEY_ID_METADATA] == b"k2"
    with pytest.raises(PayloadKeyError, match=r"key 'k2', which is not configured"):
        await before.decode([fresh])


async def test_unknown_key_id_is_refused_clearly() -> None:
    written = await codec("k1", k1=K1).encode([plain()])
    with pytest.raises(PayloadKeyError) as refused:
        await codec("k2", k2=K2).decode(written)
    assert "'k1'" in str(refused.value) and "configured: k2" in str(refused.value)


async def test_wrong_key_under_the_same_id_or_a_relabelled_payload_does_not_authenticate() -> None:
    (written,) = await codec("k1", k1=K1).encode([plain()])
    with pytest.raises(PayloadDecryptionError, match="does not authenticate"):
        await codec("k1", k1=K2).decode([written])
    # The key id is authenticated data: moving a payload under another id fails too.
    relabelled = Payload()
    relabelled.CopyFrom(written)
    relabelled.metadata[KEY_ID_METADATA] = b"k2"
    with pytest.raises(PayloadDecryptionError):
        await codec("k1", k1=K1, k2=K1).decode([relabelled])
    tampered = Payload()
    tampered.CopyFrom(written)
    tampered.data = written.data[:-1] + bytes([written.data[-1] ^ 1])
    with pytest.raises(PayloadDecryptionError):
        await codec("k1", k1=K1).decode([tampered])


async def test_payloads_in_clear_pass_through() -> None:
    """Histories from before encryption, and a signal typed into a UI without the codec."""
    assert await codec("k1", k1=K1).decode([plain()]) == [plain()]


def test_keys_are_checked() -> None:
    with pytest.raises(PayloadKeyError, match="16 bytes"):
        PayloadKeys.parse({"k1": base64.b64encode(os.urandom(16)).decode()})
    with pytest.raises(PayloadKeyError, match="not base64"):
        PayloadKeys.parse({"k1": "not base64 at all!"})
    with pytest.raises(PayloadKeyError, match="say which one encrypts"):
        PayloadKeys.parse({"k1": K1, "k2": K2})
    with pytest.raises(PayloadKeyError, match="'k3' is not among"):
        PayloadKeys.parse({"k1": K1, "k2": K2}, "k3")
    with pytest.raises(PayloadKeyError, match="key id"):
        PayloadKeys.parse({"bad id": K1})
    url_safe = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    assert PayloadKeys.parse({"k1": url_safe}).current == "k1"


class CardHolder(BaseModel):
    name: str
    email: str


async def test_the_data_converter_encrypts_values_and_failure_messages() -> None:
    converter = data_converter(codec("k1", k1=K1))
    holder = CardHolder(name="Ada Lovelace", email="ada.lovelace@example.com")
    (payload,) = await converter.encode([holder])
    assert SECRET not in payload.SerializeToString()
    assert await converter.decode([payload], [CardHolder]) == [holder]

    failure = Failure()
    await converter.encode_failure(
        ApplicationError("card of ada.lovelace@example.com declined", type="CardDeclined"),
        failure,
    )
    assert SECRET not in failure.SerializeToString()  # the message is an encoded attribute
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError)
    assert decoded.message == "card of ada.lovelace@example.com declined"
    assert decoded.type == "CardDeclined"


def test_development_keys_file_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "payload-keys.json"
    assert ensure_development_keys(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = PayloadKeys.load(path)
    assert ensure_development_keys(path) is False  # a second `make run` keeps it
    assert PayloadKeys.load(path) == first


async def test_rotating_a_keys_file(tmp_path: Path) -> None:
    path = tmp_path / "payload-keys.json"
    ensure_development_keys(path, key_id="k1")
    written = await EncryptionCodec(PayloadKeys.load(path)).encode([plain()])
    rotate_keys_file(path, "k2")
    rotated = PayloadKeys.load(path)
    assert rotated.current == "k2" and set(rotated.keys) == {"k1", "k2"}
    assert await EncryptionCodec(rotated).decode(written) == [plain()]
    with pytest.raises(PayloadKeyError, match="already has a key 'k2'"):
        rotate_keys_file(path, "k2")


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_settings_keys_from_the_environment_the_file_or_none(tmp_path: Path) -> None:
    assert settings(tmp_path).payload_codec() is None  # no key anywhere: payloads in clear
    with pytest.raises(PayloadKeyError, match="required"):
        settings(tmp_path, payload_encryption_required=True).payload_codec()

    from_env = settings(
        tmp_path,
        payload_keys={"k2": SecretStr(K2), "k1": SecretStr(K1)},
        payload_key_id="k2",
    ).payload_keyring()
    assert from_env is not None and from_env.current == "k2" and set(from_env.keys) == {"k1", "k2"}

    ensure_development_keys(tmp_path / "payload-keys.json", key_id="dev-1")
    found = settings(tmp_path).payload_codec()
    assert found is not None and found.key_id == "dev-1"
    with pytest.raises(PayloadKeyError, match="cannot read"):
        settings(tmp_path, payload_keys_file=tmp_path / "missing.json").payload_codec()


def test_settings_read_keys_as_json_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLGATE_PAYLOAD_KEYS", json.dumps({"k1": K1, "k2": K2}))
    monkeypatch.setenv("TOLLGATE_PAYLOAD_KEY_ID", "k1")
    keys = settings(tmp_path).payload_keyring()
    assert keys is not None and keys.current == "k1" and set(keys.keys) == {"k1", "k2"}
    assert K1 not in repr(settings(tmp_path))  # secrets stay out of reprs and logs


def test_payload_keys_commands(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.payload_keys import payload_keys_app

    runner = CliRunner()
    path = tmp_path / "secrets" / "payload-keys.json"
    assert runner.invoke(payload_keys_app, ["init", "--file", str(path)]).exit_code == 0
    again = runner.invoke(payload_keys_app, ["init", "--file", str(path)])
    assert again.exit_code == 1 and "exists" in again.stderr
    rotated = runner.invoke(payload_keys_app, ["rotate", "--key-id", "k2", "--file", str(path)])
    assert rotated.exit_code == 0, rotated.stderr
    shown = runner.invoke(payload_keys_app, ["show", "--file", str(path)])
    assert shown.stdout.splitlines() == ["current: k2", "keys: k1, k2"]
    for key in PayloadKeys.load(path).keys.values():
        assert base64.b64encode(key).decode() not in shown.stdout
    generated = runner.invoke(payload_keys_app, ["generate"]).stdout.strip()
    assert len(base64.b64decode(generated)) == 32
