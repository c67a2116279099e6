"""What every backend needs and none owns: snapshots, package specs, model files, pickled inputs, log decoding,
doctor reports. Backends import from here, never from each other."""
