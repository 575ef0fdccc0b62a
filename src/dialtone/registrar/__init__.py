"""The registrar: REGISTER for the account's Clients, the location service, keep-alive pings."""
