"""The error every firmware_bridge file format raises: hex-beat text, weight image and deployment bundle.

It lives below :mod:`firmware_bridge.rtl_hex`, :mod:`firmware_bridge.weight_image` and :mod:`firmware_bridge.bundle`
so that the three import each other in one direction only, and callers catch one type whichever format failed.
"""

from __future__ import annotations


class ImageError(ValueError):
    """A weight image, its geometry, its hex-beat text or a bundle is inconsistent (the message says how)."""
