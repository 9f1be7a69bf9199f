"""The demo: a small instrumented shop, simulated shoppers and incidents (`shopwatch demo`)."""
