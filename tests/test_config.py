from __future__ import annotations

import pytest

from rtsource.config import Config, from_dict, load_config


def test_defaults_and_overrides():
    cfg = load_config(inverse={"lambda2": 0.05, "method": None})
    assert cfg.inverse.lambda2 == 0.05 and cfg.inverse.method == "eloreta"
    assert cfg.regions.atlas == "bn246" and cfg.headmodel.spacing_mm == 7.0


def test_unknown_key_names_the_setting_and_suggests(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[inverse]\nlamda2 = 0.1\n")
    with pytest.raises(ValueError, match=r"inverse\.lamda2.*lambda2"):
        load_config(p)


def test_bad_literal_lists_options():
    with pytest.raises(ValueError, match=r"conductor.*'bem', 'sphere'"):
        from_dict(Config, {"headmodel": {"conductor": "fem"}})


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        load_config("nope.toml")


def test_shipped_configs_load():
    from pathlib import Path

    for path in sorted((Path(__file__).parents[1] / "configs").glob("*.toml")):
        if path.name.startswith("train"):
            continue  # training configs have their own schema (rtsource.train)
        load_config(path)


# -- one vocabulary, one check ----------------------------------------------------------
def test_vocabularies_are_defined_once():
    """The CLI's choices and the engines' backends are the config's vocabularies."""
    from typing import get_args

    from rtsource import config as c
    from rtsource.engines import BACKENDS as ENGINE_BACKENDS

    assert c.METHODS == get_args(c.Method) and set(c.METHOD_STAGES) == set(c.METHODS)
    assert ENGINE_BACKENDS is c.BACKENDS
    assert c.method_stages("piunet") == ("eloreta", "piunet")
    assert all(c.method_stages(m) == (m, None) for m in c.INVERSE_METHODS)


@pytest.mark.parametrize("setting, value, where", [
    ("method", "eloretta", "method"),
    ("backend", "cuad", "refine.backend"),
    ("atlas", "bn264", "regions.atlas"),
])
def test_same_error_for_the_same_bad_value_everywhere(tmp_path, capsys, setting, value,
                                                       where):
    """localize, the config loader, Localizer/SourceProcessor (through Config) and the
    CLI report a bad value with one message naming the setting, the value, the valid
    values and a close match."""
    import numpy as np

    import rtsource
    from rtsource.cli import main

    def message(fn):
        with pytest.raises(ValueError) as err:
            fn()
        return str(err.value)

    overrides = {"method": {"method": value}, "backend": {"refine": {"backend": value}},
                 "atlas": {"regions": {"atlas": value}}}[setting]
    expected = message(lambda: load_config(**overrides))
    assert f"Setting {where} = {value!r} is not valid" in expected and "Did you mean" in expected
    x = np.zeros((3, 5))
    kw = {"method": {"method": value}, "backend": {"config": None},
          "atlas": {"atlas": value}}[setting]
    if setting != "backend":
        assert message(lambda: rtsource.localize(x, ["Cz", "Pz", "Fz"], 100.0, **kw)) == expected
        assert message(lambda: rtsource.Localizer(["Cz", "Pz", "Fz"], 100.0, **kw)) == expected
    toml = tmp_path / "bad.toml"
    section, key = where.split(".") if "." in where else ("inverse", "method")
    toml.write_text(f'[{section}]\n{key} = "{value}"\n')
    assert main(["localize", "nothing.fif", "--config", str(toml)]) == 1
    err = capsys.readouterr().err
    assert f"{value!r} is not valid" in err and "Did you mean" in err


def test_config_sections_validate_themselves():
    from rtsource.config import HeadModelConfig, InverseConfig, RefineConfig, StreamConfig

    with pytest.raises(ValueError, match=r"stream\.hop_s = 0\.1 s must not exceed"):
        StreamConfig(hop_s=0.1, window_s=0.05)
    with pytest.raises(ValueError, match=r"headmodel\.spacing_mm = -7"):
        HeadModelConfig(spacing_mm=-7)
    with pytest.raises(ValueError, match=r"refine\.decimate = 0"):
        RefineConfig(decimate=0)
    with pytest.raises(ValueError, match=r"names a network.*refiner = 'piunet'"):
        InverseConfig(method="piunet")


def test_old_piunet_inverse_setting_still_loads(tmp_path):
    p = tmp_path / "old.toml"
    p.write_text('[inverse]\nmethod = "piunet"\n')
    with pytest.warns(FutureWarning, match="refiner"):
        cfg = load_config(p)
    assert (cfg.method, cfg.inverse.method, cfg.refine.refiner) == ("piunet", "eloreta",
                                                                     "piunet")


@pytest.mark.parametrize("overrides, match", [
    ({"stream": {"notch_hz": True}}, r"stream\.notch_hz = True must be a number"),
    ({"stream": {"highpass_hz": 50, "lowpass_hz": 10}}, "must be below stream.lowpass_hz"),
    ({"stream": {"lowpass_hz": -5}}, r"stream\.lowpass_hz = -5\.0 must be a positive"),
    ({"stream": {"notch_hz": "50"}}, r"stream\.notch_hz = '50' must be a number"),
    ({"stream": {"expected_channels": 0}}, r"expected_channels = 0"),
    ({"headmodel": {"bem_ico": 7}}, r"headmodel\.bem_ico = 7 is not valid"),
    ({"headmodel": {"conductivity": [0.3, 0.006]}}, "list of 3 finite numbers"),
    ({"inverse": {"depth": -1}}, r"inverse\.depth = -1\.0"),
    ({"foo": {"a": 1}}, "Unknown config section 'foo'"),
])
def test_bad_values_are_refused_when_the_config_loads(overrides, match):
    with pytest.raises(ValueError, match=match):
        load_config(**overrides)
