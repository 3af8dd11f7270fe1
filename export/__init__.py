"""Export stage: the torch side (loading, reference recipe, conversion, quantization).

Nothing here may reach the network: the hub is forced offline before transformers or
huggingface_hub are imported anywhere in this package.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
