"""tito: the TinyTorch course CLI (export, release, module workflow, checks).

Every command is a thin shell over functions in this package, which the tests call directly.
"""
