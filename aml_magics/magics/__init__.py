"""The IPython front end: ``%load_ext aml_magics`` registers ``%aml`` / ``%%aml``."""
from __future__ import annotations

from .aml import AmlMagics

_registered: list[AmlMagics] = []


#: the subcommands whose first word names something of the workspace, and what
_NAMES_OF = {"show": "runs", "logs": "runs", "metrics": "runs", "cancel": "runs", "compare": "runs", "resume": "runs",
             "register": "runs", "deploy": "models", "models": "models", "batch": "models", "service": "services"}
_COMPLETE_RUNS = 100  # the newest runs offered


def _complete(self, event) -> list[str]:
    """Tab completion: subcommands, then that subcommand's options — and the runs, models or services it names (of
    the workspace this kernel has open)."""
    from .aml import _PARSER
    from .parser import subcommands

    subs = subcommands(_PARSER)
    words = event.line.split()
    typing_new = event.line.endswith(" ")
    if len(words) <= 1 or (len(words) == 2 and not typing_new):
        return sorted(subs)
    parser = subs.get(words[1])
    if parser is None:
        return []
    if words[1] == "help":
        return sorted(subs)
    options = [o for a in parser._actions for o in a.option_strings]
    choices = [c for a in parser._actions if a.choices and not a.option_strings for c in a.choices]
    return sorted(set(options) | set(map(str, choices))) + _names_here(parser, words[2:], typing_new, words[1])


def _names_here(parser, typed: list[str], typing_new: bool, sub: str) -> list[str]:
    """The workspace names a word in this place can be: not an option's value nor an option, and for a
    subcommand that names one thing (``show RUN``, ``register RUN PATH``) only its first word — the parser says
    which name several (``compare RUN [RUN ...]``, ``deploy MODEL [MODEL ...]``)."""
    done = typed if typing_new else typed[:-1]  # the words before the one being completed
    if not typing_new and typed and typed[-1].startswith("-"):
        return []
    takes_value = {o for a in parser._actions if a.option_strings and a.nargs != 0 for o in a.option_strings}
    if done and done[-1] in takes_value:
        return []
    positional = [w for i, w in enumerate(done) if not w.startswith("-")
                  and not (i and done[i - 1] in takes_value)]
    first = next((a for a in parser._actions if not a.option_strings), None)
    if positional and (first is None or first.nargs not in ("+", "*")):
        return []
    return _workspace_names(_NAMES_OF.get(sub))


def _workspace_names(kind: "str | None") -> list[str]:
    """Names of ``kind`` in the local workspace this kernel already has open — never opening one, nor asking an
    Azure workspace (a tab press must not wait on the network); nothing when anything goes wrong."""
    magics = _registered[-1] if kind and _registered else None
    client = getattr(magics, "_client", None)
    if client is None or getattr(client.config, "backend", None) != "local":
        return []
    try:
        if kind == "runs":
            names = ["last"]
            for info in client.runs.list(limit=_COMPLETE_RUNS).infos:
                names += [info.run_id, info.display_name or ""]
        elif kind == "models":
            names = [m.name for m in client.models.list()]
        else:
            names = [s.name for s in client.deployments.list()]
    except Exception:  # noqa: BLE001 - completion offers what it can
        return []
    out: list[str] = []
    for name in names:  # a name the magic's line could not take as one word is left out
        if name and name not in out and not any(c.isspace() or c in "'\"" for c in name):
            out.append(name)
    return out


def load_ipython_extension(ipython) -> None:
    magics = AmlMagics(shell=ipython, config=ipython.config)
    ipython.register_magics(magics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)  # so `%config AmlMagics.x = …` reaches it
    _registered.append(magics)
    from .display import register

    register(ipython, magics)
    for key in ("%aml", "%%aml"):
        ipython.set_hook("complete_command", _complete, str_key=key)


def unload_ipython_extension(ipython) -> None:
    from .display import unregister

    unregister(ipython)
    for magics in _registered:
        if magics in ipython.configurables:
            ipython.configurables.remove(magics)
    _registered.clear()
