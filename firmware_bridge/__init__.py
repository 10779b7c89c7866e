"""Everything that crosses the wire: protocol and framing, serial transport, weight-image export, C firmware."""
