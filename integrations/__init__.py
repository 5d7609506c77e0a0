"""Optional adapters to other simulators and training stacks; each module imports its own optional dependency."""
