"""The IPython front end: ``%load_ext aml_magics`` registers ``%aml`` / ``%%aml``."""
from __future__ import annotations

from .aml import AmlMagics

_registered: list[AmlMagics] = []


def _complete(self, event) -> list[str]:
    """Tab completion: subcommands, then that subcommand's options."""
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
    options = [o for a in parser._actions for o in a.option_strings]
    choices = [c for a in parser._actions if a.choices and not a.option_strings for c in a.choices]
    return sorted(set(options) | set(map(str, choices)))


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
