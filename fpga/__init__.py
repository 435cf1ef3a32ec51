"""smeflow fpga package."""
