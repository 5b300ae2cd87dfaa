"""Cameras, audio and serial vital-sign devices, real and simulated, and the device test."""
