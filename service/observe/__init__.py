"""What an operator sees of the running service: health, metrics, traces."""
