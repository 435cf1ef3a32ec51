"""bluesky plans for the simulated beamline."""
