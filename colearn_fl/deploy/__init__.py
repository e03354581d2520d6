"""Running a real federation: TLS and SuperNode-authentication material, and the local
SuperLink that ``flwr run`` leaves behind."""
