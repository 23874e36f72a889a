"""Encoders: architectures, pretrained weights and their tokenizers."""
