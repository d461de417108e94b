"""Registries: references, credentials, an OCI distribution client, push and pull, and the
transports (`oci:`, `docker://`, ...) every command reads and writes images through."""
