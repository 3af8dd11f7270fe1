"""The model: variant cards, weights, artifacts (manifest, formats), preprocessing,
what this CPU computes, and the backends that run them."""
