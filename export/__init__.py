"""Export stage: the torch side (loading, reference recipe, conversion, quantization).

Nothing here reaches the network: weights load with `local_files_only=True` from a local
folder or the local Hugging Face cache (xdepth.export.load), and processors and configs are
built from the variant cards, never fetched.
"""
