"""ophyd devices of the simulated beamline (the detector whose firmware is an SME network,
motors, shutter, beam monitor) — built on ``sme`` and ``fpga``."""
