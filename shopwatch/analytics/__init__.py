"""Analytics over stored events: one module per domain, reading via ``EventStore.query``."""
