"""Large real configs load; only alias expansion is refused as too large."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.config.load import ConfigError, load_config


def test_ten_thousand_batches_load(tmp_path: Path) -> None:
    batches = [
        {
            "name": f"batch-{index}",
            "match": {"namespace": f"ns-{index % 50}", "cronjob": f"batch-{index}"},
            "deadline": f"{index % 60} {index % 24} * * *",
            "grace": "5m",
        }
        for index in range(10_000)
    ]
    path = tmp_path / "sla.yaml"
    path.write_text(
        yaml.safe_dump({"timezone": "UTC", "slack": {"channel": "#alerts"}, "batches": batches})
    )
    assert len(load_config(str(path)).batches) == 10_000


def test_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as refused:
        load_config(str(path))
    assert any("document too large" in line for line in refused.value.lines())
