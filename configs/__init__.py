"""Variant cards and presets, shipped as package data."""
