"""Vision: frames, OpenVINO models (classifier and OCR), image decoding. No actors here."""
