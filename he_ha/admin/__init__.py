"""The local admin API: aiohttp on a unix socket, serving a Controller."""
