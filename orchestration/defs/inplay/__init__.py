"""inplay."""
