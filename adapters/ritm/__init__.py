"""RITM iter-mask HRNet-OCR models: `network` (the architecture), `predictor` (registry
factories: checkpoint -> official evaluation predictor), `models` (registry entries, no torch)."""
