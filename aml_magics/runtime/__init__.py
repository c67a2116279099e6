"""What a run process executes first: ``python -m aml_magics.runtime.launch`` (see ``launch``). User code inside
a run imports ``from aml_magics import Run`` (``core.run``); ``Run.get_context()`` finds the run's tracker from the
environment the run was started with."""
