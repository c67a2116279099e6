"""Regenerate the README's screenshots from the browser tests' artifacts.

    python scripts/readme_images.py          # run the browser tests that take them, then copy them
    python scripts/readme_images.py --copy   # only copy what test-artifacts/ holds now

The images are what the tests saw in headless Chromium (JupyterLab 4, Notebook 7), never staged by hand.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
IMAGES = ROOT / "docs" / "images"
#: README image ← the artifact a browser test saved
PICKS = {
    "dashboard-jupyterlab.png": "jupyterlab-updated.png",  # test_dashboard_browser: a live RunDetails
    "dashboard-notebook7.png": "notebook7-updated.png",
    "sweep-dark.png": "theme-dark.png",  # test_themes: a sweep's dashboard and a comparison, dark theme
    "charts.png": "charts.png",  # test_charts: compare overlay, zoomable charts, parallel coordinates
    "jupyterlab-sidebar.png": "labextension-run-view.png",  # test_labextension_browser: sidebar and run view
}
TESTS = ["tests/browser/test_dashboard_browser.py", "tests/browser/test_themes.py", "tests/browser/test_charts.py",
         "tests/browser/test_labextension_browser.py"]


def main() -> int:
    if "--copy" not in sys.argv[1:]:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", *TESTS], cwd=ROOT)
        if proc.returncode:
            print("the browser tests failed: images left as they were", file=sys.stderr)
            return proc.returncode
    missing = [src for src in PICKS.values() if not (ARTIFACTS / src).is_file()]
    if missing:
        print(f"not in test-artifacts/: {', '.join(missing)} (run without --copy)", file=sys.stderr)
        return 1
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name, src in PICKS.items():
        shutil.copyfile(ARTIFACTS / src, IMAGES / name)
        print(f"docs/images/{name} ← test-artifacts/{src}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
