"""VHDL templates: one module per generated file."""
