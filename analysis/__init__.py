"""Reduction of acquired frames: OpenCL kernels, live and offline."""
