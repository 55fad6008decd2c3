"""Signed QR tickets: claims, their encoding, signing keys and offline verification."""
