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


def test_a_yaml_mistake_is_one_line_that_says_where_wherever_yaml_is_read(tmp_path):
    """PyYAML's error is five lines with a caret drawing, and its first line ("while parsing a flow sequence") does
    not say what is wrong or where: the v1 conda reader passed all five on, the others only that first line."""
    from aml_magics.backends.azure.environments import conda_as_written
    from aml_magics.core.pipelines import load_yaml
    from aml_magics.v1.environment import Environment

    path = tmp_path / "environment.yml"
    path.write_text("name: e\ndependencies: [python=3.10\n")
    for read in (parse_packages, lambda p: conda_as_written(p.read_text()), load_yaml,
                 lambda p: Environment.from_conda_specification("e", str(p))):
        with pytest.raises(InvalidInput) as caught:
            read(path)
        message = str(caught.value)
        assert "\n" not in message and "^" not in message, message
        assert "expected ',' or ']', but got '<stream end>' at line 3, column 1" in message, message


def billion_laughs(levels: int = 10) -> str:
    """A few lines of YAML whose aliases stand for 9**levels strings."""
    lines = ["x0: &x0 [" + ",".join(['"aaaaaaaaaa"'] * 9) + "]"]
    lines += [f"x{i}: &x{i} [" + ",".join([f"*x{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nname: bomb\ndependencies:\n  - python=3.11\n  - pip:\n    - *x{levels - 1}\n"


def test_a_yaml_alias_bomb_is_refused_at_once_wherever_yaml_is_read(tmp_path):
    """A hostile environment.yml or pipeline YAML: refused in well under a second (parse_packages ran until killed,
    building the repr of 3.5 billion strings)."""
    import time

    from aml_magics.backends.azure.environments import conda_as_written, conda_pip
    from aml_magics.core.pipelines import load_yaml
    from aml_magics.v1.environment import Environment

    path = tmp_path / "environment.yml"
    path.write_text(billion_laughs())
    started = time.monotonic()
    for read in (parse_packages, lambda p: conda_as_written(p.read_text()), load_yaml,
                 lambda p: Environment.from_conda_specification("e", str(p))):
        with pytest.raises(InvalidInput, match="too large once its YAML aliases"):
            read(path)
    assert conda_pip(path.read_text()) == []  # a conda file of an environment read back: nothing, and at once
    assert time.monotonic() - started < 5
    path.write_text("common: &sk scikit-learn==1.5.2\ndependencies:\n  - pip:\n    - *sk\n")  # aliases as people
    # use them still work
    assert parse_packages(path) == ["scikit-learn==1.5.2"]


def test_a_conda_files_pip_section_is_its_packages(tmp_path):
    path = tmp_path / "environment.yml"
    path.write_text("dependencies:\n  - python=3.11\n  - pip:\n      - scikit-learn==1.5.2\n")
    assert parse_packages(path) == ["scikit-learn==1.5.2"]


def test_a_conda_files_conda_packages_are_its_packages_too(tmp_path):
    """``- scikit-learn=1.5`` beside ``- pip: [tomli-w]`` was left out: the local environment was built without it
    and the run failed on its import; a conda file of conda packages only was refused ("lists no packages")."""
    from aml_magics.core.specs import conda_as_pip

    path = tmp_path / "environment.yml"
    path.write_text("name: x\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n  - scikit-learn=1.5\n"
                    "  - conda-forge::six\n  - numpy 1.26.*\n  - pandas>=2,<3\n  - pip:\n    - tomli-w\n")
    assert parse_packages(path) == ["numpy==1.26.*", "pandas>=2,<3", "scikit-learn==1.5.*", "six", "tomli-w"]
    path.write_text("dependencies:\n  - python=3.11\n  - lightgbm\n")
    assert parse_packages(path) == ["lightgbm"]
    path.write_text("dependencies:\n  - python=3.11\n  - pip\n")
    with pytest.raises(InvalidInput, match="^the environment of environment.yml lists no packages; name the packages"):
        parse_packages(path)
    # conda's forms: a single "=" is a prefix (1.5 matches 1.5.2), a build string is dropped
    assert [conda_as_pip(p) for p in ("numpy=1.26.4=py311h64a7726_0", "numpy 1.26.4 py311_0", "scipy=1.*", "python",
                                      "pip>=23", "defaults::pip", "foo[bar]>=1", "six==1.15.0")] == \
        ["numpy==1.26.4.*", "numpy==1.26.4", "scipy==1.*", None, None, None, "foo[bar]>=1", "six==1.15.0"]


def test_a_requirements_file_that_includes_another_takes_its_packages(tmp_path):
    """`-r base.txt` — how a project shares its requirements between files — was refused ("nested files are not
    supported"); it is read as pip reads it (beside the file that names it, nested, in any of pip's spellings).
    A loop, a missing file, an editable install or a pip option is one line naming the file and line."""
    from aml_magics.core.errors import NotFound

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.txt").write_text("scikit-learn>=1.3  # shared\n-rcommon.txt\n")
    (tmp_path / "sub" / "common.txt").write_text("numpy\n")
    (tmp_path / "requirements.txt").write_text("# the app\n--requirement=sub/base.txt\npandas\n-r sub/common.txt\n")
    assert parse_packages(tmp_path / "requirements.txt") == ["numpy", "pandas", "scikit-learn>=1.3"]
    for name, text, error, says in [
        ("a.txt", "-r b.txt\n", InvalidInput, "requirements files include each other (a.txt → b.txt → a.txt)"),
        ("c.txt", "numpy\n-r missing.txt\n", NotFound, "line 2 of c.txt includes missing.txt, which is not there"),
        ("d.txt", "numpy\n-e .\n", InvalidInput, "line 2 of d.txt is an editable install ('-e .')"),
        ("e.txt", "-r f.txt\n", InvalidInput, "line 2 of f.txt is pip's option --extra-index-url: "),
        ("g.txt", "-r https://example.com/r.txt\n", InvalidInput, "requirements from a URL are not read here"),
    ]:
        (tmp_path / name).write_text(text)
        (tmp_path / "b.txt").write_text("-r a.txt\n")
        (tmp_path / "f.txt").write_text("numpy\n--extra-index-url https://example.com/simple\n")
        with pytest.raises(error) as caught:
            parse_packages(tmp_path / name)
        assert says in str(caught.value), str(caught.value)
