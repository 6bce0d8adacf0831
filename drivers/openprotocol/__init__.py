"""Atlas Copco Open Protocol (torque controllers, TCP 4545): framing, typed MIDs, client."""
