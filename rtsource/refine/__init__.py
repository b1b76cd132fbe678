"""Refinement networks: the 3D-PIUNet U-Net, volume mapping and checkpoints."""
