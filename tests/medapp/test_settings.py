"""Settings: defaults, round trip, one clear error per bad value, MEDAPP_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medapp import paths
from medapp.errors import UserError
from medapp.settings import Settings


def test_missing_file_gives_defaults_and_does_not_write(medapp_home: Path) -> None:
    s = Settings.load()
    assert s.device == "auto" and s.quant == "none" and s.model_dir is None
    assert not paths.settings_path().exists()


def test_round_trip_under_medapp_home(medapp_home: Path) -> None:
    s = Settings().updated(device="cpu", max_new_tokens=64, window_presets={"ct-lung": {"center": -500, "width": 1400}})
    written = s.save()
    assert written == medapp_home / "settings.json"
    again = Settings.load()
    assert again == s


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("device", "tpu", "must be one of auto, cpu, cuda"),
        ("quant", "8bit", "must be one of none, 4bit"),
        ("max_new_tokens", 0, "whole number from 1 to 8192"),
        ("max_new_tokens", True, "whole number"),
        ("temperature", 0, "above 0.0"),
        ("batch_size", "4", "whole number from 1 to 64"),
        ("audit_question_text", "yes", "true or false"),
        ("window_presets", {"x": {"center": 40, "width": 0}}, "width of at least 1"),
    ],
)
def test_bad_value_names_setting_and_file(medapp_home: Path, key: str, value: object, fragment: str) -> None:
    path = paths.settings_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({key: value}))
    with pytest.raises(UserError) as err:
        Settings.load()
    message = str(err.value)
    assert str(path) in message and repr(key) in message and fragment in message


def test_unknown_key_and_bad_json_are_user_errors(medapp_home: Path) -> None:
    path = paths.settings_path()
    path.parent.mkdir(parents=True)
    path.write_text('{"max_new_token": 5}')
    with pytest.raises(UserError, match="unknown setting 'max_new_token'"):
        Settings.load()
    path.write_text('{"device": "cpu",}')
    with pytest.raises(UserError, match=r"not valid JSON \(line 1"):
        Settings.load()


def test_generation_limits_pass_sampling_knobs_only_when_sampling() -> None:
    assert Settings().generation().engine_kwargs() == {"max_new_tokens": 512, "do_sample": False}
    sampled = Settings(do_sample=True, temperature=0.5, top_p=0.8).generation().engine_kwargs()
    assert sampled == {"max_new_tokens": 512, "do_sample": True, "temperature": 0.5, "top_p": 0.8}
