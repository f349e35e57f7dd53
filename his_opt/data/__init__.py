"""Package data: the shipped HIQM fits and GPU profiles (``models/``), the example inputs
(``examples/``) and the profiling sweep recipes (``sweeps/``). Read them through
:mod:`his_opt.resources`, never by path arithmetic on the source tree."""
