"""The call layer: calls and legs, routing, and the records it keeps (CDRs, Notifications)."""
