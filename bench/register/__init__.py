"""REGISTER benchmark: SIPp digest registrations against Kamailio and dialtone."""
