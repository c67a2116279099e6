"""What ``doctor`` reports: checks, each ok / repaired / problem with a detail, and whole sentences of advice."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DoctorReport:
    workspace: str
    checks: list[tuple[str, str, str]] = field(default_factory=list)  # (check, "ok" | "repaired" | "problem", detail)
    advice: list[str] = field(default_factory=list)  # whole sentences shown under the table (what to do next)

    def add(self, check: str, outcome: str, detail: str = "") -> None:
        self.checks.append((check, outcome, detail))

    @property
    def healthy(self) -> bool:
        return all(outcome != "problem" for _, outcome, _ in self.checks)

    def __repr__(self) -> str:
        from ...core.render import text_table

        verdict = "healthy" if self.healthy else "PROBLEMS FOUND"
        return (f"Workspace {self.workspace}: {verdict}\n" + text_table(("check", "result", "detail"), self.checks, 90)
                + "".join(f"\n{line}" for line in self.advice))

    def _repr_html_(self) -> str:
        from ...core.render import esc, html_table

        verdict = "healthy" if self.healthy else "<b style='color:#c62828'>problems found</b>"
        return f"<p>Workspace <code>{esc(self.workspace)}</code>: {verdict}</p>" + html_table(
            ("check", "result", "detail"), self.checks) + "".join(f"<p>{esc(line)}</p>" for line in self.advice)
