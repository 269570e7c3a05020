"""The litert backend (see ``backend.py``); importing this package imports no framework."""
