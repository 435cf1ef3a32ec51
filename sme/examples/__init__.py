"""Example networks: the SME counter and the benchmark pipeline of DESIGN.md."""
