"""Network UPS Tools (NUT) protocol: codec, ups.status parsing and a blocking client."""
