"""The two stores: events (append-only, analytical) and state (configuration).

Code outside this package never writes SQL for a specific engine.
"""
