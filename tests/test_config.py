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
