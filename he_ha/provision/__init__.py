"""Storage provisioning (deploy's HA part) and the shared-storage reads behind init and repair."""
