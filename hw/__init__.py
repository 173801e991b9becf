"""Capture: turns a camera (or a stand-in) into a stream of encoded H.264 access units."""
