"""Colours that read in JupyterLab's light and dark themes (and in a static HTML export): JupyterLab's CSS
variables where it has one, else translucent tints over whatever background the theme has, with the text colour
left to the theme."""
from __future__ import annotations

#: a row whose values differ between the compared runs
DIFF_ROW = "background:rgba(255,167,38,0.24)"
#: the best trial's row
BEST_ROW = "background:rgba(67,160,71,0.28);font-weight:600"
#: error text
ERROR = "color:var(--jp-error-color1,#c62828)"
