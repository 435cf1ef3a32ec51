"""Data path from the detector firmware to storage: readout, frame queues, HDF5, catalog."""
