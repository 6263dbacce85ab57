"""The ``recperf`` command line: a thin layer over perfmodel, kernels, search and validation.

Nothing imports this package.
"""
