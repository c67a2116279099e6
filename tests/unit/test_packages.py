"""Environment files as a careless user writes them: one clear error, never a YAML traceback."""
from __future__ import annotations

import pytest

from aml_magics.backends.common.packages import parse_packages
from aml_magics.core.errors import InvalidInput


@pytest.mark.parametrize("text, message", [
    ("dependencies: [python=3.10\n", "is not valid YAML"),
    ("- just\n- a list\n", "not a conda environment file"),
])
def test_a_broken_conda_file_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "environment.yml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=message):
        parse_packages(path)


def test_a_conda_files_pip_section_is_its_packages(tmp_path):
    path = tmp_path / "environment.yml"
    path.write_text("dependencies:\n  - python=3.11\n  - pip:\n      - scikit-learn==1.5.2\n")
    assert parse_packages(path) == ["scikit-learn==1.5.2"]
