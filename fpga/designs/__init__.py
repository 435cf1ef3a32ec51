"""Detector front-end firmware written with ``sme``: the chain that turns a sensor's link
words into one packet per frame (see docs/firmware.md and ``fpga.designs.chain``)."""
